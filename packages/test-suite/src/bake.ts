import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "@kiln/core";
import { defineProvisioner, KilnError, type DriverFactory, type KilnEvent, type ProvisionerFactory } from "@kiln/core";
import { BuildRun, loadProject, type BuildOptions, type BuildResult } from "@kiln/core/engine";

/** Runs a shell command on the machine and fails the step when it exits non-zero. Only for conformance bakes. */
const run = defineProvisioner(() => ({
  name: "run",
  schema: z.strictObject({ command: z.string() }),
  fingerprint: async (_ctx, opts) => opts.command,
  async run(ctx, machine, opts) {
    const result = await machine.exec(opts.command, { signal: ctx.signal, onOutput: ctx.output });
    if (result.exitCode !== 0) throw new KilnError("E_PROVISION", `"${opts.command}" exited with ${result.exitCode}`);
  },
}));

/** The name the driver under test has in conformance bakes; the suite's own instance uses it too, so both share one state dir. */
export const CONFORMANCE_DRIVER = "under-test";

export interface BakeOptions {
  driver: DriverFactory<unknown>;
  /** Driver options for the image (must include `source`). */
  options: Record<string, unknown>;
  /** Shell commands run in order, each as one provision step. */
  commands: string[];
  tags?: string[];
  verify?: Record<string, unknown>;
  /** Called with each event: e.g. abort the run once a step starts. */
  onEvent?: (event: KilnEvent, run: BuildRun, abort: () => void) => void;
  provisioners?: Record<string, ProvisionerFactory<unknown>>;
  /** Run settings: how long a cleanup may take, how long to wait for a step abandoned on Ctrl-C, what a failure keeps. */
  run?: Pick<BuildOptions, "cleanupTimeoutMs" | "graceMs" | "onError">;
}

/** Bakes one image through the real loader and lifecycle runner, as `kiln build` would. */
export async function bakeWith(options: BakeOptions): Promise<BuildResult & { events: KilnEvent[] }> {
  const dir = await mkdtemp(join(tmpdir(), "kiln-conformance-"));
  try {
    const image = {
      driver: CONFORMANCE_DRIVER,
      ...options.options,
      provision: options.commands.map((command) => ({ run: { command } })),
      ...(options.tags ? { tags: options.tags } : {}),
      ...(options.verify ? { verify: options.verify } : {}),
    };
    await writeFile(join(dir, "kiln.yaml"), JSON.stringify({ images: { conformance: image } }, null, 2));
    const project = await loadProject(join(dir, "kiln.yaml"), {
      plugins: { registry: { drivers: { [CONFORMANCE_DRIVER]: options.driver }, provisioners: { run, ...options.provisioners } } },
    });
    const controller = new AbortController();
    const events: KilnEvent[] = [];
    const build: BuildRun = new BuildRun({
      project,
      kilnVersion: "conformance",
      signal: controller.signal,
      ...options.run,
      onEvent: (event) => {
        events.push(event);
        options.onEvent?.(event, build, () => controller.abort(new KilnError("E_INTERRUPTED", "interrupted by the test")));
      },
    });
    return { ...(await build.run()), events };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

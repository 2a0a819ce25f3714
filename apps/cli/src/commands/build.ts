import { resolve } from "node:path";
import { KilnError, parseDuration, type KilnEvent } from "@kiln/core";
import { BuildRun, defaultParallelism, findOutdated, rebakeWaves } from "@kiln/core/engine";
import { listFlag, parseCommandArgs } from "../args.js";
import { manifestOf, MANIFEST_NAME, writeManifest } from "../manifest.js";
import { openProject } from "../project.js";
import { createRenderer, outputMode } from "../render/index.js";
import { stallGuard } from "../stall-guard.js";

export async function build(argv: string[], version: string): Promise<number> {
  const { values, positionals } = parseCommandArgs("build", argv);
  const onError = values["on-error"] ?? "cleanup";
  if (onError !== "cleanup" && onError !== "abort") {
    throw new KilnError("E_CONFIG", `--on-error must be cleanup or abort, not "${onError}"`);
  }
  const project = await openProject(values, positionals[0]);
  let selection: { only?: string[]; force?: boolean | string[] } = {
    ...(values.only ? { only: listFlag(values.only) ?? [] } : {}),
    ...forceOption(values.force, listFlag(values["force-image"])),
  };
  if (values["rebake-outdated"]) {
    const outdated = (await findOutdated(project, { maxAge: values["max-age"] })).filter((entry) => entry.reasons.length > 0);
    const waves = rebakeWaves(
      project,
      outdated.map((entry) => entry.image),
    );
    if (values["dry-run"] || waves.length === 0) {
      for (const entry of outdated) process.stdout.write(`${entry.image}: ${entry.reasons.join("; ")}\n`);
      for (const [index, wave] of waves.entries()) process.stdout.write(`wave ${index + 1}: ${wave.join(", ")}\n`);
      if (waves.length === 0) process.stdout.write("nothing is outdated\n");
      return 0;
    }
    // Outdated images are rebaked even when their key is unchanged (an age-based rebake picks up new packages).
    const names = waves.flat();
    selection = { only: names, force: names };
  } else if (values["dry-run"]) {
    const { printPlan } = await import("./plan.js");
    return printPlan(project, { ...selection, ...(values.except ? { except: listFlag(values.except) ?? [] } : {}) }, values.json ?? false);
  }
  const renderer = await createRenderer(outputMode(values.json));
  const controller = new AbortController();
  const run = new BuildRun({
    project,
    ...selection,
    ...(values.except ? { except: listFlag(values.except) ?? [] } : {}),
    onError,
    parallel: parallelOption(values.parallel),
    ...(values["cleanup-timeout"] ? { cleanupTimeoutMs: durationOption("--cleanup-timeout", values["cleanup-timeout"]) } : {}),
    signal: controller.signal,
    kilnVersion: version,
    onEvent: (event) => renderer.onEvent(event),
  });
  const signalEvent = (signal: string, force: boolean): KilnEvent => ({ type: "signal", signal, force, time: new Date().toISOString() });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals === 1) {
      renderer.onEvent(signalEvent(signal, false));
      controller.abort(new KilnError("E_INTERRUPTED", `interrupted by ${signal}`));
      return;
    }
    renderer.onEvent(signalEvent(signal, true));
    renderer.stop();
    for (const left of run.leftovers()) {
      process.stderr.write(`left behind: ${left.resource}${left.manualCommand ? ` — remove it: ${left.manualCommand}` : ""}\n`);
    }
    process.exit(130);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const stalled = stallGuard(controller);
  try {
    const result = await run.run();
    const manifestPath = resolve(project.dir, values.manifest ?? MANIFEST_NAME);
    await writeManifest(manifestPath, manifestOf(result, project, version));
    renderer.stop();
    if (!values.json) {
      for (const record of result.records.filter((item) => item.artifact)) {
        process.stdout.write(
          `${record.image}: ${record.artifact?.id}${record.artifact?.tags.length ? ` (${record.artifact.tags.join(", ")})` : ""}\n`,
        );
      }
      process.stdout.write(`manifest: ${manifestPath}\n`);
    }
    if (stalled.fired) return 1;
    if (result.interrupted) return 130;
    return result.ok ? 0 : 1;
  } finally {
    stalled.dispose();
    renderer.stop();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

export function forceOption(all: boolean | undefined, names: string[] | undefined): { force?: boolean | string[] } {
  if (all) return { force: true };
  return names?.length ? { force: names } : {};
}

function durationOption(flag: string, value: string): number {
  try {
    return parseDuration(value);
  } catch {
    throw new KilnError("E_CONFIG", `${flag} must be a duration such as 90s or 5m, not "${value}"`);
  }
}

function parallelOption(value: string | undefined): number {
  if (value === undefined) return defaultParallelism();
  const count = Number(value);
  if (!Number.isInteger(count) || count < 1) throw new KilnError("E_CONFIG", `--parallel must be a whole number ≥ 1, not "${value}"`);
  return count;
}

import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeAll, expect } from "vitest";

export const CLI = fileURLToPath(new URL("../dist/cli.js", import.meta.url));

export interface KilnRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface KilnOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** Called with the child and each stdout chunk, e.g. to send SIGINT once a line appears. */
  onStdout?: (chunk: string, child: ReturnType<typeof spawn>) => void;
  /** Called with the child as soon as it is spawned, e.g. to send SIGINT after a delay. */
  onStart?: (child: ReturnType<typeof spawn>) => void;
  nodeArgs?: string[];
}

/** Runs the built `kiln` binary as a user would, in a non-TTY (plain output). */
export function kiln(args: string[], options: KilnOptions = {}): Promise<KilnRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...(options.nodeArgs ?? []), CLI, ...args], {
      cwd: options.cwd ?? process.cwd(),
      env: { ...process.env, CI: "1", ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    options.onStart?.(child);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      options.onStdout?.(chunk.toString(), child);
    });
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** A temporary project directory with the given files; removed on dispose. */
export async function project(files: Record<string, string>): Promise<{ dir: string } & AsyncDisposable> {
  const dir = await mkdtemp(join(tmpdir(), "kiln-cli-test-"));
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), content);
  }
  return { dir, [Symbol.asyncDispose]: () => rm(dir, { recursive: true, force: true }) };
}

/** Run id of a `kiln build` run, from its plain output (`==> kiln build <run id>: …`) or its --json events. */
export function runIdOf(output: string, stderr = ""): string {
  const match = /kiln build (\S+):/.exec(output) ?? /"runId":"([^"]+)"/.exec(output);
  if (!match?.[1]) throw new Error(`no run id in output:\n${output}${stderr ? `\nstderr:\n${stderr}` : ""}`);
  return match[1];
}

/** `kiln build -C dir …` that must succeed; records its run id in `runs` (for cleanup) and returns its output. */
export async function buildOk(runs: string[], dir: string, ...args: string[]): Promise<string> {
  const result = await kiln(["build", "-C", dir, ...args]);
  runs.push(runIdOf(result.stdout, result.stderr));
  expect(result.code, result.stdout + result.stderr).toBe(0);
  return result.stdout;
}

/** A unique marker per test, so no artefact of another test (or an earlier run) has the same bake key. */
export const marker = () => Math.random().toString(36).slice(2, 10);

/**
 * For a test file that bakes Docker images: builds the fixture image once, and returns the list where tests put their run ids;
 * each run's containers and images are removed after every test.
 */
export function dockerRuns(): string[] {
  const runs: string[] = [];
  // Loaded by the hooks: test files that bake nothing do not load the Docker driver.
  const testing = () => import("@kiln/driver-docker/testing");
  beforeAll(async () => (await testing()).ensureFixtureImage(), 600_000);
  afterEach(async () => {
    const { removeDockerResources } = await testing();
    // Newest first: an image cannot be removed while an artefact built on it (a later run's) still exists.
    for (const runId of runs.splice(0).reverse()) await removeDockerResources(runId);
  });
  return runs;
}

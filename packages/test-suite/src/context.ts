import { onTestFinished } from "vitest";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  pluginInit,
  type Artifact,
  type BakeContext,
  type KilnEventInput,
  type Machine,
  type PluginInit,
  type VariableValue,
} from "@kiln/core";
import { CleanupStack, createBakeContext, newRunId } from "@kiln/core/engine";

export interface TestContextOptions {
  cwd?: string;
  image?: string;
  runId?: string;
  variables?: Record<string, VariableValue>;
  parent?: Artifact;
  signal?: AbortSignal;
  /** `kiln plan`: the plugin must create nothing. */
  planning?: boolean;
  /** Shared by several tests: not cleaned up when the test that made it finishes; the caller disposes it. */
  outlivesTest?: boolean;
}

/** A BakeContext for driver and provisioner tests. Disposing it runs every registered cleanup (as a failed bake would). */
export interface TestContext extends AsyncDisposable {
  ctx: BakeContext;
  runId: string;
  /** Events and output lines the plugin emitted. */
  events: KilnEventInput[];
  /** Output lines (stdout and stderr) the plugin streamed. */
  output(): string[];
  cleanup(outcome?: "success" | "failure"): Promise<void>;
}

export function createTestContext(options: TestContextOptions = {}): TestContext {
  const runId = options.runId ?? `test-${newRunId()}`;
  const events: KilnEventInput[] = [];
  const stack = new CleanupStack();
  const variables = options.variables ?? {};
  const ctx = createBakeContext({
    runId,
    image: options.image ?? "conformance",
    cwd: options.cwd ?? process.cwd(),
    variables,
    parent: options.parent,
    ...(options.planning ? { planning: true } : {}),
    signal: options.signal ?? new AbortController().signal,
    cleanup: stack,
    emit: (event) => events.push(event),
    redact: (text) => text,
  });
  const cleanup = async (outcome: "success" | "failure" = "failure") => {
    const failures = [...(await stack.unwind(outcome)), ...(await stack.settled())];
    if (failures.length > 0) throw new Error(`cleanup failed: ${failures.map((f) => `${f.resource}: ${f.error}`).join("; ")}`);
  };
  let disposed = false;
  const disposeOnce = async () => {
    if (disposed) return;
    disposed = true;
    await cleanup("failure");
  };
  // A test that times out never reaches its `await using` disposal: clean up when vitest finishes the test, whatever happened.
  try {
    if (!options.outlivesTest) onTestFinished(disposeOnce);
  } catch {
    // Created outside a running test (e.g. in beforeAll): the caller disposes it.
  }
  return {
    ctx,
    runId,
    events,
    output: () => events.flatMap((event) => (event.type === "output" ? [event.line] : [])),
    cleanup,
    [Symbol.asyncDispose]: disposeOnce,
  };
}

/** Runs a command as root and returns its stdout; throws with stderr when it fails, so assertions stay short. */
export async function execOk(machine: Machine, command: string): Promise<string> {
  const result = await machine.exec(command, { user: "root" });
  if (result.exitCode !== 0) throw new Error(`\`${command}\` exited with ${result.exitCode}: ${result.stderr}`);
  return result.stdout;
}

/**
 * What Kiln gives a plugin factory, for tests: the real cache directory (base images are shared, as in a bake), and a
 * state directory of its own (not created until the plugin writes to it), so a driver's artefact store starts empty.
 */
export function testPluginInit(kind: "driver" | "provisioner", name: string, where: { cwd?: string; stateDir?: string } = {}): PluginInit {
  const real = pluginInit(kind, name, where.cwd ?? process.cwd(), { info() {}, warn() {}, debug() {} });
  return { ...real, stateDir: where.stateDir ?? join(tmpdir(), `kiln-test-state-${randomBytes(6).toString("hex")}`, `${kind}-${name}`) };
}

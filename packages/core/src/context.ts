import type { CleanupStack } from "./cleanup.js";
import type { KilnEventInput } from "./events.js";
import type { Artifact, BakeContext, VariableValue } from "./types.js";
import { confinedPath, OutsideProject } from "./config/confine.js";
import { KilnError } from "./errors.js";
import { LABELS } from "./provenance.js";

export interface ContextInit {
  runId: string;
  image: string;
  cwd: string;
  variables: Record<string, VariableValue>;
  parent: Artifact | undefined;
  planning?: boolean;
  signal: AbortSignal;
  keepsMachineOnFailure?: boolean;
  cleanup: CleanupStack;
  emit: (event: KilnEventInput) => void;
  redact: (text: string) => string;
  /** Host directories outside the project this bake may read and write (`allow_host_paths`, `--allow-path`). */
  allowedPaths?: readonly string[];
}

/** A BakeContext plus `flushOutput`, which emits any partial output line left when a step ends. */
export interface RunnerContext extends BakeContext {
  flushOutput(): void;
}

export function createBakeContext(init: ContextInit): RunnerContext {
  const pending = { stdout: "", stderr: "" };
  const emitLine = (stream: "stdout" | "stderr", line: string) =>
    init.emit({ type: "output", image: init.image, stream, line: line.replace(/\r$/, "") });
  const log = (level: "info" | "warn" | "debug") => (message: string) => init.emit({ type: "log", image: init.image, level, message });
  return {
    runId: init.runId,
    image: init.image,
    cwd: init.cwd,
    variables: init.variables,
    parent: init.parent,
    ...(init.planning ? { planning: true } : {}),
    ...(init.keepsMachineOnFailure ? { keepsMachineOnFailure: true } : {}),
    signal: init.signal,
    resourceLabels: { [LABELS.build]: init.runId, [LABELS.image]: init.image },
    log: { info: log("info"), warn: log("warn"), debug: log("debug") },
    emit: init.emit,
    defer: (cleanup, options) => init.cleanup.defer(cleanup, options),
    redact: init.redact,
    hostPath: async (path, access = "read") => {
      try {
        return await confinedPath(init.cwd, path, init.allowedPaths ?? []);
      } catch (error) {
        if (!(error instanceof OutsideProject)) throw error;
        throw new KilnError("E_CONFIG", `image "${init.image}" would ${access} ${error.path}, which ${error.reason}`, {
          hint: "keep the files in the project, or allow the directory with allow_host_paths on the image (or kiln build --allow-path)",
        });
      }
    },
    output(stream, chunk) {
      const lines = (pending[stream] + chunk).split("\n");
      pending[stream] = lines.pop() ?? "";
      for (const line of lines) emitLine(stream, line);
    },
    flushOutput() {
      for (const stream of ["stdout", "stderr"] as const) {
        if (pending[stream]) emitLine(stream, pending[stream]);
        pending[stream] = "";
      }
    },
  };
}

/** The same context with another abort signal (a step's timeout). */
export function withSignal<T extends BakeContext>(ctx: T, signal: AbortSignal): T {
  return { ...ctx, signal };
}

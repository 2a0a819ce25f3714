import { isKilnError, type Diagnostic, type KilnEvent } from "@kiln/core";
import type { Renderer } from "./index.js";

/**
 * Version of the `--json` line format (docs/events.md, @kiln/core/events.schema.json). Adding a line type or a field keeps it;
 * removing or changing one bumps it, so a consumer can refuse a stream it was not written for instead of misreading it.
 */
export const EVENT_STREAM_VERSION = 1;

/** The last line of `kiln verify --json`: the outcome the exit code also reports. */
export interface VerifyResultLine {
  type: "verify.result";
  image: string;
  /** Id of the artefact that was verified. */
  artifact: string;
  ok: boolean;
  passed: number;
  total: number;
  error?: { code: string; message: string };
  time: string;
}

/** Printed when a command fails outside a run (a bad flag, an invalid bake file, an unknown artefact). */
export interface ErrorLine {
  type: "error";
  code?: string;
  message: string;
  hint?: string;
  diagnostics?: Diagnostic[];
  time: string;
}

export type JsonLine = KilnEvent | VerifyResultLine | ErrorLine;

/** Writes one NDJSON line; `v` comes first so a consumer can check the version before it reads anything else. */
export function writeJsonLine(line: JsonLine): void {
  process.stdout.write(`${JSON.stringify({ v: EVENT_STREAM_VERSION, ...line })}\n`);
}

export function jsonRenderer(): Renderer {
  return { onEvent: writeJsonLine, stop: () => {} };
}

export function errorLine(error: unknown): ErrorLine {
  const time = new Date().toISOString();
  if (!isKilnError(error)) return { type: "error", message: String(error), time };
  return {
    type: "error",
    code: error.code,
    message: error.message,
    ...(error.hint ? { hint: error.hint } : {}),
    diagnostics: error.diagnostics,
    time,
  };
}

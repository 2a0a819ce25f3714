import type { KilnEvent } from "@kiln/core";
import { eventLine } from "./text.js";
import { ttyRenderer } from "./tty.js";

export interface Renderer {
  onEvent(event: KilnEvent): void;
  stop(): void;
}

/** `--json`: one NDJSON event per line on stdout; a terminal: live progress; otherwise (CI, pipes): plain prefixed lines. */
export function createRenderer(mode: "json" | "tty" | "plain"): Renderer {
  if (mode === "json") return { onEvent: (event) => process.stdout.write(`${JSON.stringify(event)}\n`), stop: () => {} };
  if (mode === "tty") return ttyRenderer();
  return {
    onEvent(event) {
      const line = eventLine(event);
      if (line !== undefined) process.stdout.write(`${line}\n`);
    },
    stop: () => {},
  };
}

export function outputMode(json: boolean | undefined): "json" | "tty" | "plain" {
  if (json) return "json";
  return process.stderr.isTTY && !process.env.CI ? "tty" : "plain";
}

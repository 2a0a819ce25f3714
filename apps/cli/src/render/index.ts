import type { KilnEvent } from "@kiln/core";
import { jsonRenderer } from "./json.js";
import { eventLine } from "./text.js";

export interface Renderer {
  onEvent(event: KilnEvent): void;
  stop(): void;
}

/** `--json`: one NDJSON event per line on stdout; a terminal: live progress; otherwise (CI, pipes): plain prefixed lines. */
export async function createRenderer(mode: "json" | "tty" | "plain"): Promise<Renderer> {
  if (mode === "json") return jsonRenderer();
  // The live renderer (and its terminal libraries) loads only for a terminal.
  if (mode === "tty") return (await import("./tty.js")).ttyRenderer();
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

import { describe, expect, it } from "vitest";
import { outputLines } from "./output.js";

describe("outputLines", () => {
  it("forwards whole lines per stream, however the chunks are cut", () => {
    const seen: string[] = [];
    const lines = outputLines((stream, line) => seen.push(`${stream}:${line}`));
    lines.add("stdout", "Starting Ch");
    lines.add("stderr", "warn");
    lines.add("stdout", "ef\r\nRecipe: app");
    lines.add("stderr", "ing\n");
    lines.flush();
    expect(seen).toEqual(["stdout:Starting Chef\n", "stderr:warning\n", "stdout:Recipe: app\n"]);
  });

  it("hides the secret even when it arrives split across chunks", () => {
    const seen: string[] = [];
    const lines = outputLines((_stream, line) => seen.push(line), ["s3cr3t-value-123"]);
    lines.add("stdout", "the secret is s3cr3t-va");
    lines.add("stdout", "lue-123 and again s3cr3t-value-123\n");
    expect(seen).toEqual(["the secret is <sensitive> and again <sensitive>\n"]);
    expect(lines.tail()).toEqual(["the secret is <sensitive> and again <sensitive>"]);
  });

  it("keeps the last lines and Chef's FATAL/ERROR lines even when more output followed", () => {
    const lines = outputLines(() => {});
    lines.add("stdout", "[t] ERROR: execute[x] had an error\n[t] FATAL: Chef::Exceptions::Boom\n");
    for (let i = 1; i <= 30; i++) lines.add("stdout", `line${i}\n`);
    lines.add("stderr", "\n");
    const tail = lines.tail();
    expect(tail).toEqual([
      "[t] ERROR: execute[x] had an error",
      "[t] FATAL: Chef::Exceptions::Boom",
      ...Array.from({ length: 10 }, (_, i) => `line${i + 21}`),
    ]);
  });
});

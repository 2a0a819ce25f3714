import { formatDiagnostic, formatDuration, isKilnError, type KilnEvent } from "@kiln/core";

/** One line for an event in plain output, Packer-style (`==> web: …`, `    web: output`); undefined for events shown elsewhere. */
export function eventLine(event: KilnEvent): string | undefined {
  switch (event.type) {
    case "run.start":
      return `==> kiln build ${event.runId}: ${event.images.join(", ")}`;
    case "image.start":
      return `==> ${event.image}: bake key ${event.bakeKey.slice(0, 12)}${event.parent ? ` (on ${shortId(event.parent)})` : ""}`;
    case "step.start":
      return `==> ${event.image}: ${stepLabel(event.step, event.detail)}`;
    case "step.retry":
      return `==> ${event.image}: ${event.step} failed (attempt ${event.attempt}), retrying in ${formatDuration(event.delayMs)}: ${event.error}`;
    case "output":
      return `    ${event.image}: ${event.line}`;
    case "verify.check":
      return checkLine(event);
    case "log":
      return event.level === "debug"
        ? undefined
        : `    ${event.image ?? "kiln"}: ${event.level === "warn" ? "warning: " : ""}${event.message}`;
    case "image.done":
      return `==> ${event.image}: baked ${shortId(event.artifact.id)}${event.artifact.tags.length ? ` as ${event.artifact.tags.join(", ")}` : ""} in ${formatDuration(event.durationMs)}`;
    case "image.cached":
      return `==> ${event.image}: cached ${shortId(event.artifact.id)} (bake key ${event.bakeKey.slice(0, 12)} unchanged)${event.artifact.tags.length ? ` as ${event.artifact.tags.join(", ")}` : ""}`;
    case "image.failed":
      return `==> ${event.image}: FAILED after ${formatDuration(event.durationMs)}: ${event.error.message}${event.error.hint ? `\n    hint: ${event.error.hint}` : ""}`;
    case "image.skipped":
      return `==> ${event.image}: skipped: ${event.reason}`;
    case "cleanup.failed":
      return `==> ${event.image ?? "kiln"}: could not remove ${event.resource}: ${event.error}${event.manualCommand ? `\n    remove it by hand: ${event.manualCommand}` : ""}`;
    case "abort.kept":
      return keptLines(event);
    case "signal":
      return event.force ? "==> forced exit: resources may be left behind" : "==> interrupted: cleaning up (press Ctrl-C again to force)";
    case "run.end":
      return `==> ${event.ok ? "done" : event.interrupted ? "interrupted" : "failed"} in ${formatDuration(event.durationMs)}`;
    default:
      return undefined;
  }
}

/** How to attach to what `--on-error=abort` kept, then how to remove all of it once done (a block that can be pasted as is). */
function keptLines(event: Extract<KilnEvent, { type: "abort.kept" }>): string {
  const lines = [`==> ${event.image}: kept build machine ${event.machine} (--on-error=abort); attach with:`, `    ${event.attachCommand}`];
  const kept = event.kept ?? [];
  if (kept.length > 0) {
    lines.push(`==> ${event.image}: when done, remove what it kept with:`);
    for (const entry of kept)
      lines.push(entry.manualCommand ? `    ${entry.manualCommand}` : `    # ${entry.resource}: no command known, remove it by hand`);
  }
  return lines.join("\n");
}

/** `✓ http :8080/ (2 attempts)` or `✗ name` with expected and actual on the lines below. */
function checkLine(event: Extract<KilnEvent, { type: "verify.check" }>): string {
  const scenario = event.scenario === "default" ? "" : ` [${event.scenario}]`;
  const tries = event.attempts > 1 ? ` (${event.attempts} attempts, ${formatDuration(event.durationMs)})` : "";
  if (event.ok) return `    ${event.image}: ✓ ${event.check}${scenario}${tries}`;
  const pad = (text: string | undefined) => (text ?? "").split("\n").join(`\n    ${event.image}:             `);
  return `    ${event.image}: ✗ ${event.check}${scenario}${tries}\n    ${event.image}:     expected: ${pad(event.expected)}\n    ${event.image}:     actual:   ${pad(event.actual)}`;
}

/** `launch debian:bookworm`; provision steps already read `provision[0] shell`. */
export function stepLabel(step: string, detail: string | undefined): string {
  if (!detail) return step;
  return detail.startsWith(step) ? detail : `${step} ${detail}`;
}

/** A content digest (`sha256:…`) shortened as `docker images` does; other ids (an AMI id) are short already and stay whole. */
export function shortId(id: string): string {
  return id.startsWith("sha256:") ? id.slice(7, 19) : id;
}

/** An error as the user sees it on stderr: message, each diagnostic with its place, and the hint. */
export function errorText(error: unknown): string {
  if (!isKilnError(error)) return `error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`;
  const lines = [`error: ${error.message}`];
  for (const diagnostic of error.diagnostics) lines.push(`  ${formatDiagnostic(diagnostic)}`);
  if (error.hint) lines.push(`hint: ${error.hint}`);
  return lines.join("\n");
}

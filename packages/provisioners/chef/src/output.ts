type Stream = "stdout" | "stderr";

const TAIL_LINES = 10;
const FATAL_LINES = 5;

/** Where a command's output goes: whole lines to the user (through `forward`), and the last ones kept for an error message. */
export interface OutputLines {
  /** Pass as `onOutput` to `Machine.exec`. */
  add(stream: Stream, chunk: string): void;
  /** Forwards any partial last line. Call when the command has ended. */
  flush(): void;
  /** The last lines, plus the last `FATAL:`/`ERROR:` lines (Chef's reason for failing) even when more output followed them. */
  tail(): string[];
}

/**
 * Splits output into lines per stream (so interleaved chunks don't merge), hides `hidden` values in each line before anyone
 * sees it, forwards each line to `forward`, and keeps the tail for the error message.
 */
export function outputLines(forward: (stream: Stream, line: string) => void, hidden: readonly string[] = []): OutputLines {
  const pending = { stdout: "", stderr: "" };
  let kept: { seq: number; text: string }[] = [];
  let fatal: { seq: number; text: string }[] = [];
  let seq = 0;
  const hide = (line: string) => hidden.reduce((text, value) => text.split(value).join("<sensitive>"), line);
  const emit = (stream: Stream, raw: string) => {
    const text = hide(raw.replace(/\r$/, ""));
    forward(stream, `${text}\n`);
    if (text.trim() === "") return;
    const line = { seq: seq++, text };
    kept = [...kept, line].slice(-TAIL_LINES);
    if (/\b(FATAL|ERROR):/.test(text)) fatal = [...fatal, line].slice(-FATAL_LINES);
  };
  return {
    add(stream, chunk) {
      const parts = (pending[stream] + chunk).split("\n");
      pending[stream] = parts.pop() ?? "";
      for (const line of parts) emit(stream, line);
    },
    flush() {
      for (const stream of ["stdout", "stderr"] as const) if (pending[stream] !== "") emit(stream, pending[stream]);
      pending.stdout = pending.stderr = "";
    },
    tail() {
      const chosen = new Set([...fatal, ...kept]);
      return [...chosen].sort((a, b) => a.seq - b.seq).map((line) => line.text);
    },
  };
}

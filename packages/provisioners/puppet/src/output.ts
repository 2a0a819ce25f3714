type Stream = "stdout" | "stderr";

/**
 * Facter 4 tries to read `/proc/1/environ` to detect containers and reports each refusal as an `Error:` line (18 per run on
 * a host, one in a container). Puppet's exit code is unaffected: the lines are noise and never reach the user.
 */
const FACTER_NOISE = /^Error: Facter: Permission denied @ rb_sysopen - \/proc\/1\/environ\s*$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI colour sequences start with ESC.
const ANSI = /\u001b\[[0-9;]*m/g;
const TAIL_LINES = 10;
const MAX_KEPT = 20;

/** What a `puppet apply --detailed-exitcodes` exit code means. */
export function exitCodeMeaning(code: number): string {
  switch (code) {
    case 0:
      return "no changes";
    case 2:
      return "changes applied";
    case 1:
      return "Puppet could not compile or apply the catalog";
    case 4:
      return "some resources failed";
    case 6:
      return "changes applied, but some resources failed";
    default:
      return "not an exit code puppet apply --detailed-exitcodes gives";
  }
}

export interface PuppetOutput {
  /** Feeds a chunk of the command's output: complete lines, minus Facter's noise, go to `forward`. */
  add(stream: Stream, chunk: string): void;
  /** Forwards a last line without a newline. */
  flush(): void;
  /** Resources Puppet reported as failed (`/Stage[main]/Main/Exec[/bin/false]`), in order, once each. */
  failedResources(): string[];
  /** Resources skipped because a resource they depend on failed. */
  skippedResources(): string[];
  /** The first `Error:` lines, once each. */
  errors(): string[];
  /** The last lines of output (either stream), in arrival order. */
  tail(): string[];
}

/** Splits Puppet's output into lines, drops Facter's noise, forwards the rest and remembers what a failure message needs. */
export function puppetOutput(forward: (stream: Stream, line: string) => void): PuppetOutput {
  const pending = { stdout: "", stderr: "" };
  const failed = new Set<string>();
  const skipped = new Set<string>();
  const errors = new Set<string>();
  let tail: string[] = [];

  const line = (stream: Stream, raw: string) => {
    const text = raw.replace(/\r$/, "");
    const plain = text.replace(ANSI, "");
    if (FACTER_NOISE.test(plain)) return;
    forward(stream, `${text}\n`);
    if (plain.trim() === "") return;
    tail = [...tail, plain].slice(-TAIL_LINES);
    if (plain.startsWith("Error: ")) {
      if (errors.size < MAX_KEPT) errors.add(plain);
      const resource = resourcePath(plain.slice("Error: ".length));
      if (resource && failed.size < MAX_KEPT) failed.add(resource);
    } else if (plain.startsWith("Warning: ") && plain.endsWith("Skipping because of failed dependencies")) {
      const resource = resourcePath(plain.slice("Warning: ".length));
      if (resource && skipped.size < MAX_KEPT) skipped.add(resource);
    }
  };

  return {
    add(stream, chunk) {
      const parts = (pending[stream] + chunk).split("\n");
      // A line longer than this is not worth keeping whole: it is still forwarded in pieces.
      pending[stream] = parts.pop() ?? "";
      if (pending[stream].length > 64 * 1024) {
        parts.push(pending[stream]);
        pending[stream] = "";
      }
      for (const part of parts) line(stream, part);
    },
    flush() {
      for (const stream of ["stdout", "stderr"] as const) {
        if (pending[stream] !== "") line(stream, pending[stream]);
        pending[stream] = "";
      }
    },
    failedResources: () => [...failed],
    skippedResources: () => [...skipped],
    errors: () => [...errors],
    tail: () => [...tail],
  };
}

/**
 * The resource a report line names: `/Stage[main]/Main/Exec[/bin/false]/returns: change …` → `/Stage[main]/Main/Exec[/bin/false]`.
 * Titles may hold `/`, `:` and spaces, so segments are read bracket by bracket; a trailing property (`/returns`) is dropped.
 */
export function resourcePath(text: string): string | undefined {
  if (!text.startsWith("/Stage[")) return undefined;
  let at = 0;
  let resourceEnd = 0;
  while (text[at] === "/") {
    const name = /^[A-Za-z_][\w:]*/.exec(text.slice(at + 1));
    if (!name) break;
    at += 1 + name[0].length;
    if (text[at] !== "[") continue;
    let depth = 0;
    for (; at < text.length; at++) {
      if (text[at] === "[") depth++;
      else if (text[at] === "]" && --depth === 0) break;
    }
    if (depth !== 0) return undefined;
    at++;
    resourceEnd = at;
  }
  return resourceEnd > 0 ? text.slice(0, resourceEnd) : undefined;
}

/** Lines indented under a heading of a message. */
export function indent(lines: string[]): string {
  return lines.map((line) => `  ${line}`).join("\n");
}

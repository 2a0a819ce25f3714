import type { StandardSchemaV1 } from "@standard-schema/spec";
import { KilnError, type Diagnostic, type KilnErrorCode } from "../errors.js";
import { formatPath, type PathSegment, type SourceMap } from "./positions.js";

/** Collects every problem in a bake file so they can be reported at once, each with file:line:col. */
export class Diagnostics {
  readonly items: Diagnostic[] = [];
  /** What a reviewer should know but is not a problem, e.g. "runs code of the project". */
  readonly notes: Diagnostic[] = [];
  constructor(
    private readonly file: string,
    private readonly positions: SourceMap,
  ) {}

  add(path: readonly PathSegment[], message: string, options: { hint?: string; atKey?: boolean } = {}): void {
    this.items.push(this.diagnostic(path, message, options));
  }

  note(path: readonly PathSegment[], message: string, options: { hint?: string; atKey?: boolean } = {}): void {
    this.notes.push(this.diagnostic(path, message, options));
  }

  private diagnostic(path: readonly PathSegment[], message: string, options: { hint?: string; atKey?: boolean }): Diagnostic {
    const position = options.atKey ? this.positions.keyAt(path) : this.positions.valueAt(path);
    return {
      file: this.file,
      path: formatPath(path),
      message,
      ...(options.hint ? { hint: options.hint } : {}),
      ...(position ? { line: position.line, column: position.column } : {}),
    };
  }

  /** A problem that belongs to no place in the file (e.g. a command-line flag). */
  addGeneral(message: string, hint?: string): void {
    this.items.push({ file: this.file, path: "", message, ...(hint ? { hint } : {}) });
  }

  /** Adds the issues of a Standard Schema validation, with their paths under `prefix`. */
  addSchemaIssues(prefix: readonly PathSegment[], issues: readonly StandardSchemaV1.Issue[]): void {
    for (const issue of issues) {
      const path = [...prefix, ...(issue.path ?? []).map(pathKey)];
      const unknownKeys = unrecognizedKeys(issue);
      if (unknownKeys) {
        for (const key of unknownKeys) {
          this.add([...path, key], `unknown key "${key}"`, { atKey: true, hint: "remove it or check its spelling" });
        }
      } else {
        this.add(path, lowerFirst(issue.message));
      }
    }
  }

  get ok(): boolean {
    return this.items.length === 0;
  }

  /** Throws one KilnError holding every diagnostic, if there are any. */
  throwIfAny(code: KilnErrorCode = "E_CONFIG"): void {
    if (this.ok) return;
    const count = this.items.length;
    throw new KilnError(code, `${this.file}: ${count} problem${count === 1 ? "" : "s"} found`, {
      diagnostics: [...this.items].sort(byPosition),
    });
  }
}

function pathKey(segment: PropertyKey | StandardSchemaV1.PathSegment): PathSegment {
  const key = typeof segment === "object" ? segment.key : segment;
  return typeof key === "number" ? key : String(key);
}

/** Zod (and compatible libraries) report unknown keys as one issue listing them; we point at each key instead. */
function unrecognizedKeys(issue: StandardSchemaV1.Issue): string[] | undefined {
  const detail = issue as { code?: unknown; keys?: unknown };
  if (detail.code === "unrecognized_keys" && Array.isArray(detail.keys)) return detail.keys.map(String);
  return undefined;
}

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}

function byPosition(a: Diagnostic, b: Diagnostic): number {
  return (a.line ?? Infinity) - (b.line ?? Infinity) || (a.column ?? 0) - (b.column ?? 0);
}

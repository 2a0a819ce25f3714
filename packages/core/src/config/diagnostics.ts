import type { StandardSchemaV1 } from "@standard-schema/spec";
import { KilnError, type Diagnostic, type KilnErrorCode } from "../errors.js";
import { formatPath, type PathSegment, type SourceMap } from "./positions.js";

/** At most this many problems are reported at once… */
const MAX_REPORTED = 100;
/** …from at most this many collected (the rest are counted). */
const MAX_COLLECTED = 1000;

/**
 * Text from the bake file made safe to print: control characters (an escape sequence could retitle or clear the terminal)
 * shown as escapes, and anything longer than `max` characters cut, saying how much was left out.
 */
export function displayText(text: string, max: number): string {
  // Cut first: a 10 MB value costs no more than a short one. Code points rather than a regex literal of control characters.
  const kept = text.length > max ? text.slice(0, max) : text;
  const escaped = [...kept].map((char) => (isControl(char) ? `\\u${char.codePointAt(0)?.toString(16).padStart(4, "0")}` : char)).join("");
  return text.length > max ? `${escaped}… (${text.length - max} more characters)` : escaped;
}

/** C0 and C1 controls (tab and newline included: a message is one line) and the Unicode line separators. */
function isControl(char: string): boolean {
  const code = char.codePointAt(0) ?? 0;
  return code < 0x20 || (code >= 0x7f && code <= 0x9f) || code === 0x2028 || code === 0x2029;
}

/** Collects every problem in a bake file so they can be reported at once, each with file:line:col. */
export class Diagnostics {
  readonly items: Diagnostic[] = [];
  /** What a reviewer should know but is not a problem, e.g. "runs code of the project". */
  readonly notes: Diagnostic[] = [];
  /** Hides sensitive values in everything reported from here on (set once variables are known). */
  redact: (text: string) => string = (text) => text;
  /** Each problem once (by place and message), however often the file repeats it. */
  private readonly seen = new Set<string>();
  /** Problems beyond {@link MAX_COLLECTED}: counted, not kept. */
  private dropped = 0;
  constructor(
    private readonly file: string,
    private readonly positions: SourceMap,
  ) {}

  add(path: readonly PathSegment[], message: string, options: { hint?: string; atKey?: boolean } = {}): void {
    // Checked before a position is looked up or text escaped: a mistake repeated 150 000 times costs one diagnostic.
    const key = `${path.join("\u0000")}\u0001${message}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    if (this.items.length >= MAX_COLLECTED) {
      this.dropped += 1;
      return;
    }
    this.items.push(this.diagnostic(path, message, options));
  }

  note(path: readonly PathSegment[], message: string, options: { hint?: string; atKey?: boolean } = {}): void {
    this.notes.push(this.diagnostic(path, message, options));
  }

  private diagnostic(path: readonly PathSegment[], message: string, options: { hint?: string; atKey?: boolean }): Diagnostic {
    const position = options.atKey ? this.positions.keyAt(path) : this.positions.valueAt(path);
    return {
      file: this.file,
      path: displayText(this.redact(formatPath(path)), 200),
      message: displayText(this.redact(message), 500),
      ...(options.hint ? { hint: displayText(this.redact(options.hint), 500) } : {}),
      ...(position ? { line: position.line, column: position.column } : {}),
    };
  }

  /** A problem that belongs to no place in the file (e.g. a command-line flag). */
  addGeneral(message: string, hint?: string): void {
    this.items.push({
      file: this.file,
      path: "",
      message: displayText(this.redact(message), 500),
      ...(hint ? { hint: displayText(this.redact(hint), 500) } : {}),
    });
  }

  /** Adds the issues of a Standard Schema validation, with their paths under `prefix`. */
  addSchemaIssues(prefix: readonly PathSegment[], issues: readonly StandardSchemaV1.Issue[]): void {
    for (const issue of issues) {
      const path = [...prefix, ...(issue.path ?? []).map(pathKey)];
      const unknownKeys = unrecognizedKeys(issue);
      const detail = issue as SchemaIssue;
      if (unknownKeys) {
        for (const key of unknownKeys) {
          this.add([...path, key], `unknown key "${key}"`, { atKey: true, hint: "remove it or check its spelling" });
        }
      } else if (detail.code === "invalid_union" && Array.isArray(detail.errors)) {
        this.addUnionIssues(path, detail.errors);
      } else if (detail.code === "invalid_type" && isMissing(detail) && typeof detail.expected === "string") {
        this.add(path, `missing: expected ${detail.expected}`);
      } else {
        this.add(path, lowerFirst(issue.message));
      }
    }
  }

  /**
   * A value that fits none of several shapes: rather than "invalid input", say what is wrong with the shape it was meant to
   * have (the one of its type), which keys none of the shapes knows, or which types would do.
   */
  private addUnionIssues(path: PathSegment[], branches: SchemaIssue[][]): void {
    const wrongType = (branch: SchemaIssue[]) => branch.some((issue) => issue.code === "invalid_type" && (issue.path ?? []).length === 0);
    const fitting = branches.filter((branch) => !wrongType(branch));
    if (fitting.length === 0) {
      const expected = [
        ...new Set(
          branches.flatMap((branch) => branch.map((issue) => issue.expected).filter((item): item is string => typeof item === "string")),
        ),
      ];
      this.add(path, expected.length > 0 ? `expected ${expected.join(" or ")}` : "invalid input");
      return;
    }
    if (fitting.length === 1) {
      this.addSchemaIssues(path, fitting[0] as SchemaIssue[]);
      return;
    }
    // Several shapes of one type (check kinds, keyed by their one key): a key none of them knows is the mistake.
    const rootUnknown = (branch: SchemaIssue[]) =>
      new Set(branch.filter((issue) => (issue.path ?? []).length === 0).flatMap((issue) => unrecognizedKeys(issue) ?? []));
    const unknownSets = fitting.map(rootUnknown);
    const unknownEverywhere = [...(unknownSets[0] ?? [])].filter((key) => unknownSets.every((set) => set.has(key)));
    if (unknownEverywhere.length > 0) {
      const required = fitting.flatMap((branch) =>
        branch
          .filter((issue) => isMissing(issue) && issue.path?.length === 1)
          .map((issue) => String(pathKey(issue.path?.[0] as PropertyKey))),
      );
      const hint = required.length > 0 ? `expected one of: ${[...new Set(required)].join(", ")}` : "remove it or check its spelling";
      for (const key of unknownEverywhere) this.add([...path, key], `unknown key "${key}"`, { atKey: true, hint });
      return;
    }
    const fewest = fitting.reduce((best, branch) => (branch.length < best.length ? branch : best));
    this.addSchemaIssues(path, fewest);
  }
  get ok(): boolean {
    return this.items.length === 0;
  }

  /**
   * Throws one KilnError holding every diagnostic, if there are any: each problem once, and at most {@link MAX_REPORTED}
   * (an undefined variable used a million times is one line, not a million).
   */
  throwIfAny(code: KilnErrorCode = "E_CONFIG"): void {
    if (this.ok) return;
    const unique = [...new Map(this.items.map((item) => [`${item.line}:${item.column}:${item.path}:${item.message}`, item])).values()];
    const count = unique.length + this.dropped;
    const shown = unique.sort(byPosition).slice(0, MAX_REPORTED);
    const more = count - shown.length;
    throw new KilnError(code, `${this.file}: ${count} problem${count === 1 ? "" : "s"} found`, {
      diagnostics:
        more > 0 ? [...shown, { file: this.file, path: "", message: `… and ${more} more problem${more === 1 ? "" : "s"}` }] : shown,
    });
  }
}

/** A Standard Schema issue with what zod (and compatible libraries) add: the code, the expected type, the input, union branches. */
type SchemaIssue = StandardSchemaV1.Issue & { code?: unknown; expected?: unknown; errors?: SchemaIssue[][] };

/** A required key that is not there (zod says "received undefined"; a union of them says so in each branch). */
function isMissing(issue: SchemaIssue): boolean {
  if (issue.code === "invalid_union" && Array.isArray(issue.errors)) return issue.errors.every((branch) => branch.some(isMissing));
  return /received undefined$/.test(issue.message);
}

function pathKey(segment: PropertyKey | StandardSchemaV1.PathSegment): PathSegment {
  const key = typeof segment === "object" ? segment.key : segment;
  return typeof key === "number" ? key : String(key);
}

/** Zod (and compatible libraries) report unknown keys as one issue listing them; we point at each key instead. */
export function unrecognizedKeys(issue: StandardSchemaV1.Issue): string[] | undefined {
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

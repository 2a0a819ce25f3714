import { createRequire } from "node:module";
import type { RE2JS } from "re2js";

// re2js is ~270 KB of code: it is loaded on the first pattern a bake file has, not by every command at start-up.
let re2js: typeof RE2JS | undefined;
const loadRe2js = (): typeof RE2JS => (re2js ??= (createRequire(import.meta.url)("re2js") as typeof import("re2js")).RE2JS);

/**
 * Verify patterns are RE2 (Go's syntax, no backreferences or lookarounds): matching takes time linear in the text, so no
 * pattern in a bake file can block Kiln (and its Ctrl-C) for minutes. `^` and `$` match at line breaks.
 */
export function compilePattern(pattern: string): RE2JS {
  const engine = loadRe2js();
  return engine.compile(pattern, engine.MULTILINE);
}

/** Why a pattern cannot be used, or undefined when it compiles. */
export function patternProblem(pattern: string): string | undefined {
  try {
    compilePattern(pattern);
    return undefined;
  } catch (error) {
    return `not a pattern Kiln can match in linear time (RE2 syntax): ${(error as Error).message.replace(/^error parsing regexp: /, "")}`;
  }
}

export function matchesPattern(pattern: string, text: string): boolean {
  return compilePattern(pattern).matcher(text).find();
}

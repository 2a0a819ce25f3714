import { RE2JS } from "re2js";

/**
 * Verify patterns are RE2 (Go's syntax, no backreferences or lookarounds): matching takes time linear in the text, so no
 * pattern in a bake file can block Kiln (and its Ctrl-C) for minutes. `^` and `$` match at line breaks.
 */
export function compilePattern(pattern: string): RE2JS {
  return RE2JS.compile(pattern, RE2JS.MULTILINE);
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

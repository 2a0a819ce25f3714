import type { VerifyDefinition } from "./config/schema.js";
import { KilnError } from "./errors.js";
import type { Machine } from "./types.js";

type Check = VerifyDefinition["checks"][number];

export interface CheckResult {
  name: string;
  ok: boolean;
  /** What was expected and what was found, for failed checks. */
  expected?: string;
  actual?: string;
}

export function checkName(check: Check): string {
  if (check.name) return check.name;
  if ("command" in check) return `command: ${typeof check.command === "string" ? check.command : check.command.run}`;
  return `file: ${check.file.path}`;
}

/** Runs one check on a machine started from the artefact. */
export async function runCheck(machine: Machine, check: Check, signal: AbortSignal): Promise<CheckResult> {
  const name = checkName(check);
  if ("command" in check) {
    const spec = typeof check.command === "string" ? { run: check.command } : check.command;
    const result = await machine.exec(spec.run, { signal });
    const wantedExit = spec.exit_code ?? 0;
    if (result.exitCode !== wantedExit) {
      return { name, ok: false, expected: `exit code ${wantedExit}`, actual: `exit code ${result.exitCode}: ${lastLines(result.stderr || result.stdout)}` };
    }
    if (spec.stdout_contains !== undefined && !result.stdout.includes(spec.stdout_contains)) {
      return { name, ok: false, expected: `stdout containing "${spec.stdout_contains}"`, actual: lastLines(result.stdout) || "(empty)" };
    }
    return { name, ok: true };
  }
  const { path, contains } = check.file;
  const result = await machine.exec(["cat", "--", path], { signal });
  if (result.exitCode !== 0) return { name, ok: false, expected: `${path} exists`, actual: lastLines(result.stderr) || "missing" };
  if (contains !== undefined && !result.stdout.includes(contains)) {
    return { name, ok: false, expected: `${path} containing "${contains}"`, actual: lastLines(result.stdout) || "(empty)" };
  }
  return { name, ok: true };
}

export function verifyFailure(image: string, results: CheckResult[]): KilnError {
  const failed = results.filter((result) => !result.ok);
  const lines = failed.map((result) => `  ✗ ${result.name}\n      expected: ${result.expected}\n      actual:   ${result.actual}`);
  return new KilnError("E_VERIFY", `image "${image}": ${failed.length} of ${results.length} verify checks failed\n${lines.join("\n")}`, {
    hint: "the artefact was removed; fix the image or the checks and bake again",
  });
}

function lastLines(text: string, count = 5): string {
  return text.trimEnd().split("\n").slice(-count).join("\n");
}

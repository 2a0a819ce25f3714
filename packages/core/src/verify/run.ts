import { setTimeout as sleep } from "node:timers/promises";
import {
  checkKind,
  type Check,
  type CheckKind,
  type RuntimeDefinition,
  type VerifyDefinition,
  type VerifyScenario,
} from "../config/verify-schema.js";
import { parseDuration } from "../duration.js";
import { KilnError } from "../errors.js";
import type { Machine, RuntimeInputs } from "../types.js";
import { runCheckOnce, type CheckOutcome } from "./checks.js";

/** Checks of these kinds wait for things that come up after boot, so they retry for a while by default. */
const ASYNC_KINDS = new Set<CheckKind>(["port", "http", "process", "service"]);
const DEFAULT_WITHIN_MS = 30_000;
const RETRY_EVERY_MS = 500;

export interface CheckResult extends CheckOutcome {
  scenario: string;
  name: string;
  kind: CheckKind;
  attempts: number;
  durationMs: number;
}

/** A single scenario or a list, as scenarios with names. */
export function verifyScenarios(verify: VerifyDefinition | undefined): (VerifyScenario & { name: string })[] {
  if (!verify) return [];
  const list = Array.isArray(verify) ? verify : [verify];
  return list.map((scenario, index) => ({ ...scenario, name: scenario.name ?? (list.length === 1 ? "default" : `scenario ${index + 1}`) }));
}

export function checkName(check: Check): string {
  if (check.name) return check.name;
  const kind = checkKind(check);
  const spec = (check as Record<string, unknown>)[kind];
  if (typeof spec === "string" || typeof spec === "number") return `${kind} ${spec}`;
  const detail = spec as Record<string, unknown>;
  const subject = detail.run ?? detail.path ?? detail.name ?? (kind === "http" ? `:${detail.port}${detail.path ?? "/"}` : detail.port);
  return `${kind} ${String(subject)}`;
}

/** The runtime inputs for a scenario: files normalised, and the ports its checks reach from the host. */
export function runtimeInputs(runtime: RuntimeDefinition | undefined, checks: Check[], hostPorts: boolean): RuntimeInputs {
  const ports = checks.flatMap((check) => {
    if ("port" in check && typeof check.port === "object" && check.port.from_host) return [check.port.port];
    if ("http" in check && (check.http.from === "host" || (check.http.from === undefined && hostPorts))) return [check.http.port];
    return [];
  });
  const files = Object.fromEntries(
    Object.entries(runtime?.files ?? {}).map(([path, file]) =>
      typeof file === "string"
        ? [path, { content: file }]
        : [path, { content: file.content, ...(file.mode ? { mode: Number.parseInt(file.mode, 8) } : {}) }],
    ),
  );
  return {
    ...(runtime?.env ? { env: runtime.env } : {}),
    ...(Object.keys(files).length ? { files } : {}),
    ...(runtime?.boot_script ? { bootScript: runtime.boot_script } : {}),
    ...(runtime?.user_data ? { userData: runtime.user_data } : {}),
    ...(ports.length ? { ports: [...new Set(ports)] } : {}),
  };
}

export interface RunChecksOptions {
  machine: Machine;
  scenario: string;
  checks: Check[];
  signal: AbortSignal;
  hostPorts: boolean;
  onResult?: (result: CheckResult) => void;
}

/**
 * Runs every check (all of them, so the report lists each failure), retrying each until it passes or its `within` runs out.
 * A machine that stopped answering (`E_LAUNCH`) ends the scenario at once.
 */
export async function runChecks(options: RunChecksOptions): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  for (const check of options.checks) {
    const kind = checkKind(check);
    const started = Date.now();
    const within = check.within !== undefined ? parseDuration(check.within) : ASYNC_KINDS.has(kind) ? DEFAULT_WITHIN_MS : 0;
    let attempts = 0;
    let outcome: CheckOutcome;
    for (;;) {
      attempts += 1;
      outcome = await runCheckOnce({ machine: options.machine, signal: options.signal, hostPorts: options.hostPorts }, kind, check).catch(
        (error: unknown) => {
          if (options.signal.aborted || (error instanceof KilnError && error.code === "E_LAUNCH")) throw error;
          return { ok: false, expected: "the check to run", actual: (error as Error).message };
        },
      );
      if (outcome.ok || Date.now() - started + RETRY_EVERY_MS > within) break;
      await sleep(RETRY_EVERY_MS, undefined, { signal: options.signal });
    }
    const result = { ...outcome, scenario: options.scenario, name: checkName(check), kind, attempts, durationMs: Date.now() - started };
    options.onResult?.(result);
    results.push(result);
  }
  return results;
}

export function verifyFailure(image: string, results: CheckResult[]): KilnError {
  const failed = results.filter((result) => !result.ok);
  const scenarios = new Set(results.map((result) => result.scenario));
  const lines = failed.map((result) => {
    const where = scenarios.size > 1 ? ` [${result.scenario}]` : "";
    return `  ✗ ${result.name}${where}\n      expected: ${indent(result.expected)}\n      actual:   ${indent(result.actual)}`;
  });
  return new KilnError("E_VERIFY", `image "${image}": ${failed.length} of ${results.length} verify checks failed\n${lines.join("\n")}`, {
    hint: "the artefact was removed; fix the image or the checks and bake again",
  });
}

function indent(text: string | undefined): string {
  return (text ?? "").split("\n").join("\n                ");
}

import { KilnError } from "../errors.js";
import { parseDuration } from "../duration.js";
import type { StandardSchemaV1 } from "../types.js";
import type { Diagnostics } from "./diagnostics.js";
import type { ProvisionStep } from "./load.js";
import type { PathSegment } from "./positions.js";
import { COMMON_STEP_KEYS, commonStepSchema } from "./schema.js";

type Step = Record<string, unknown>;

/** Replaces each `- use: name` by the steps of that list (recursively), keeping where each step was written for errors. */
export function expandSteps(
  steps: Step[],
  path: PathSegment[],
  lists: Record<string, Step[]>,
  diagnostics: Diagnostics,
  chain: string[] = [],
): { step: Step; path: PathSegment[]; via?: string }[] {
  return steps.flatMap((step, index) => {
    const name = step.use;
    if (typeof name !== "string") return [{ step, path: [...path, index], ...(chain.length ? { via: chain.join(" → ") } : {}) }];
    const list = lists[name];
    if (!list) {
      diagnostics.add([...path, index, "use"], `no step list named "${name}"`, {
        hint: `define it under steps:${Object.keys(lists).length ? ` (defined: ${Object.keys(lists).join(", ")})` : ""}`,
      });
      return [];
    }
    if (chain.includes(name)) {
      diagnostics.add([...path, index, "use"], `step list "${name}" uses itself: ${[...chain, name].join(" → ")}`);
      return [];
    }
    return expandSteps(list, ["steps", name], lists, diagnostics, [...chain, name]);
  });
}

export const INVALID = Symbol("invalid");

export async function validate(
  schema: StandardSchemaV1<unknown, unknown>,
  input: unknown,
  at: PathSegment[],
  diagnostics: Diagnostics,
): Promise<unknown> {
  const result = await schema["~standard"].validate(input);
  if (result.issues) {
    diagnostics.addSchemaIssues(at, result.issues);
    return INVALID;
  }
  return result.value;
}

export async function loadPlugin<T>(
  load: () => Promise<T>,
  path: PathSegment[],
  diagnostics: Diagnostics,
  atKey = false,
): Promise<T | undefined> {
  try {
    return await load();
  } catch (error) {
    if (!(error instanceof KilnError)) throw error;
    diagnostics.add(path, error.message, { atKey, ...(error.hint ? { hint: error.hint } : {}) });
    return undefined;
  }
}

export function splitCommonStepOptions(
  options: Record<string, unknown>,
  path: PathSegment[],
  diagnostics: Diagnostics,
): { common: Pick<ProvisionStep, "timeoutMs" | "pauseBeforeMs" | "maxRetries">; rest: Record<string, unknown> } {
  const rest = Object.fromEntries(Object.entries(options).filter(([key]) => !(COMMON_STEP_KEYS as string[]).includes(key)));
  const parsed = commonStepSchema.safeParse(options);
  if (!parsed.success) {
    diagnostics.addSchemaIssues(path, parsed.error.issues);
    return { common: { maxRetries: 0 }, rest };
  }
  const { timeout, pause_before: pauseBefore, max_retries: maxRetries } = parsed.data;
  return {
    common: {
      maxRetries: maxRetries ?? 0,
      ...(timeout !== undefined ? { timeoutMs: parseDuration(timeout) } : {}),
      ...(pauseBefore !== undefined ? { pauseBeforeMs: parseDuration(pauseBefore) } : {}),
    },
    rest,
  };
}

import { KilnError } from "../errors.js";
import { parseDuration } from "../duration.js";
import type { StandardSchemaV1 } from "../types.js";
import type { Diagnostics } from "./diagnostics.js";
import type { ProvisionStep } from "./load.js";
import type { PathSegment } from "./positions.js";
import { COMMON_STEP_KEYS, commonStepSchema } from "./schema.js";

type Step = Record<string, unknown>;

/** An image whose steps expand to more than this (lists used twice at every level grow exponentially) is refused. */
const MAX_STEPS = 1000;
/** `use:` lists nested deeper than this are no composition a person means. */
const MAX_NESTING = 64;

/**
 * Replaces each `- use: name` by the steps of that list (and theirs, in turn), keeping where each step was written for
 * errors. Iterative, so a chain of lists thousands deep cannot overflow the stack.
 */
export function expandSteps(
  steps: Step[],
  path: PathSegment[],
  lists: Record<string, Step[]>,
  diagnostics: Diagnostics,
): { step: Step; path: PathSegment[]; via?: string }[] {
  const expanded: { step: Step; path: PathSegment[]; via?: string }[] = [];
  // The lists being expanded, outermost first: a stack, so a list using itself is found in it, and nothing is copied per level.
  const active: string[] = [];
  const frames: { steps: Step[]; path: PathSegment[]; next: number }[] = [{ steps, path, next: 0 }];
  while (frames.length > 0) {
    const frame = frames[frames.length - 1] as (typeof frames)[number];
    if (frame.next >= frame.steps.length) {
      frames.pop();
      if (frames.length > 0) active.pop();
      continue;
    }
    const index = frame.next++;
    const step = frame.steps[index] as Step;
    const name = step.use;
    if (typeof name !== "string") {
      if (expanded.length === MAX_STEPS) {
        diagnostics.add(path, `the steps expand to more than ${MAX_STEPS} (through use:)`, {
          hint: "a list used twice at every level grows exponentially",
        });
        return expanded;
      }
      expanded.push({ step, path: [...frame.path, index], ...(active.length ? { via: viaText(active) } : {}) });
      continue;
    }
    const list = Object.hasOwn(lists, name) ? lists[name] : undefined;
    if (!list) {
      const defined = Object.keys(lists).slice(0, 20);
      diagnostics.add([...frame.path, index, "use"], `no step list named "${name}"`, {
        hint: `define it under steps:${defined.length ? ` (defined: ${defined.join(", ")})` : ""}`,
      });
    } else if (active.length >= MAX_NESTING) {
      diagnostics.add([...frame.path, index, "use"], `use: lists nest more than ${MAX_NESTING} deep`, { hint: "flatten the lists" });
      return expanded;
    } else if (active.includes(name)) {
      diagnostics.add(
        [...frame.path, index, "use"],
        `step list "${name}" uses itself: ${viaText([...active.slice(active.indexOf(name)), name])}`,
      );
    } else {
      active.push(name);
      frames.push({ steps: list, path: ["steps", name], next: 0 });
    }
  }
  return expanded;
}

/** `hardening → base` — and for a chain thousands long, its ends. */
function viaText(lists: string[]): string {
  return lists.length > 10 ? [...lists.slice(0, 5), `… ${lists.length - 10} more …`, ...lists.slice(-5)].join(" → ") : lists.join(" → ");
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

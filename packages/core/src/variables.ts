import { resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { readTextInput } from "./config/read.js";
import { KilnError } from "./errors.js";
import type { VariableDefinition } from "./config/schema.js";
import type { VariableValue } from "./types.js";

/** Where variable values come from, lowest precedence first: defaults, var files (in order), environment, --var. */
export interface VariableInputs {
  /** `--var name=value` pairs. */
  vars?: Record<string, string>;
  /** `--var-file` paths (YAML or JSON maps). */
  varFiles?: string[];
  /** Environment to read `KILN_VAR_<name>` from. Defaults to none. */
  env?: Record<string, string | undefined>;
}

export const ENV_PREFIX = "KILN_VAR_";
const TEMPLATE = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g;

/** Parses `name=value` from a --var flag. */
export function parseVarFlag(flag: string): [string, string] {
  const at = flag.indexOf("=");
  if (at <= 0) {
    throw new KilnError("E_VARIABLE", `--var "${flag}" is not name=value`, { hint: "write --var app_version=1.4.2" });
  }
  return [flag.slice(0, at), flag.slice(at + 1)];
}

export interface VariableProblem {
  /** The variable concerned. */
  name: string;
  message: string;
  /** True when the variable is declared (the problem belongs at its declaration); false for values given for undeclared names. */
  declared: boolean;
}

/** Resolves every declared variable to a value, and lists each one that is missing or unknown. */
export async function resolveVariables(
  definitions: Record<string, VariableDefinition>,
  inputs: VariableInputs,
  cwd: string,
): Promise<{ values: Record<string, VariableValue>; problems: VariableProblem[] }> {
  const given = new Map<string, { value: string; from: string }>();
  for (const file of inputs.varFiles ?? []) {
    for (const [name, value] of Object.entries(await readVarFile(resolve(cwd, file)))) {
      given.set(name, { value, from: `--var-file ${file}` });
    }
  }
  for (const [key, value] of Object.entries(inputs.env ?? {})) {
    if (key.startsWith(ENV_PREFIX) && value !== undefined) {
      const name = key.slice(ENV_PREFIX.length);
      if (name in definitions) given.set(name, { value, from: `$${key}` });
    }
  }
  for (const [name, value] of Object.entries(inputs.vars ?? {})) given.set(name, { value, from: "--var" });

  const problems: VariableProblem[] = [];
  for (const [name, { from }] of given) {
    if (!(name in definitions))
      problems.push({ name, declared: false, message: `${from} sets "${name}", which the bake file does not declare` });
  }
  const values: Record<string, VariableValue> = {};
  for (const [name, definition] of Object.entries(definitions)) {
    const value = given.get(name)?.value ?? (definition.default === undefined ? undefined : String(definition.default));
    if (value === undefined) {
      problems.push({ name, declared: true, message: `variable "${name}" has no value: pass --var ${name}=… or set ${ENV_PREFIX}${name}` });
      continue;
    }
    values[name] = { value, sensitive: definition.sensitive ?? false };
  }
  return { values, problems };
}

async function readVarFile(path: string): Promise<Record<string, string>> {
  let parsed: unknown;
  try {
    parsed = parseYaml(await readTextInput(path, path, "var file", { code: "E_VARIABLE" }), { maxAliasCount: 100 });
  } catch (error) {
    if (error instanceof KilnError) throw error;
    throw new KilnError("E_VARIABLE", `cannot read var file ${path}: ${(error as Error).message.split("\n")[0]}`, { cause: error });
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new KilnError("E_VARIABLE", `var file ${path} must hold a map of name: value`);
  }
  return Object.fromEntries(Object.entries(parsed).map(([name, value]) => [name, String(value)]));
}

/** Names referenced as `{{ name }}` in a string. */
export function templateReferences(text: string): string[] {
  return [...text.matchAll(TEMPLATE)].map((match) => match[1] as string);
}

/** Replaces `{{ name }}` in every string inside `value` (deeply). Unknown names are left as written. */
export function interpolate<T>(value: T, variables: Record<string, VariableValue>): T {
  if (typeof value === "string") {
    return value.replace(
      TEMPLATE,
      (whole, name: string) => (Object.hasOwn(variables, name) ? variables[name]?.value : undefined) ?? whole,
    ) as T;
  }
  if (Array.isArray(value)) return value.map((item) => interpolate(item, variables)) as T;
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, interpolate(item, variables)])) as T;
  }
  return value;
}

/** Lines shorter than this of a multi-line secret are not redacted alone: `}` or `-----END` would hide half of every log. */
export const MIN_SECRET_LINE = 8;

/**
 * Replaces every sensitive value with `<sensitive>`; longest first, so a value containing another is hidden whole. A
 * multi-line value (a key, a certificate) is also hidden line by line — every line of {@link MIN_SECRET_LINE} characters or
 * more — since output reaches the redactor a line at a time.
 */
export function createRedactor(variables: Record<string, VariableValue>): (text: string) => string {
  const values = Object.values(variables)
    .filter((variable) => variable.sensitive && variable.value.length > 0)
    .map((variable) => variable.value);
  const lines = values.flatMap((value) =>
    value
      .split(/\r?\n/)
      .map((line) => line.trim())
      .filter((line) => line.length >= MIN_SECRET_LINE),
  );
  const secrets = [...new Set([...values, ...lines])].sort((a, b) => b.length - a.length);
  if (secrets.length === 0) return (text) => text;
  return (text) => secrets.reduce((result, secret) => result.split(secret).join("<sensitive>"), text);
}

/** Applies a redactor to every string inside a JSON-like value. */
export function redactDeep<T>(value: T, redact: (text: string) => string): T {
  if (typeof value === "string") return redact(value) as T;
  if (Array.isArray(value)) return value.map((item) => redactDeep(item, redact)) as T;
  if (value !== null && typeof value === "object" && !(value instanceof Error)) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, redactDeep(item, redact)])) as T;
  }
  return value;
}

import { createHash } from "node:crypto";
import type { VerifyScenario } from "./config/verify-schema.js";
import type { SourceRef, VariableValue } from "./types.js";

export interface BakeKeyInput {
  driver: string;
  driverOptions: unknown;
  source: SourceRef;
  provision: { name: string; options: unknown; fingerprint: string }[];
  verify: VerifyScenario[];
  /** `name@version` of the plugin packages: a fixed driver or provisioner invalidates what its older version baked. */
  plugins: string[];
}

export function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/**
 * sha256 over everything that decides the image's content: driver and options, the resolved source (a parent's artefact id
 * for `from:`), each provisioner with options and content fingerprint, the verify block, and the plugins' package versions. Sensitive values enter only as
 * their hash, so the key changes when a secret changes without revealing it.
 */
export function bakeKey(input: BakeKeyInput, variables: Record<string, VariableValue>): string {
  return bakeKeyPart(
    {
      driver: input.driver,
      options: input.driverOptions,
      source: { id: input.source.id, digest: input.source.digest ?? null },
      provision: input.provision,
      verify: input.verify.length > 0 ? input.verify : null,
      plugins: input.plugins,
    },
    variables,
  );
}

/** JSON with object keys sorted, so equal values always give equal text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) =>
    item !== null && typeof item === "object" && !Array.isArray(item)
      ? Object.fromEntries(Object.entries(item).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : item,
  );
}

/**
 * A short hash per input (driver options, source, each provision step, verify), stored on the artefact as `dev.kiln.inputs`
 * so `kiln plan` can say *what* changed since the last bake, not only that the key differs.
 */
export interface InputSummary {
  driver: string;
  source: string;
  provision: string[];
  verify: string;
  /** `name@version` of each plugin package; absent on artefacts baked before versions were recorded. */
  plugins?: string[];
}

export function inputSummary(input: BakeKeyInput, variables: Record<string, VariableValue>): InputSummary {
  const short = (value: unknown) => bakeKeyPart(value, variables).slice(0, 12);
  return {
    driver: short({ driver: input.driver, options: input.driverOptions }),
    source: input.source.id,
    provision: input.provision.map((step) => short(step)),
    verify: short(input.verify),
    plugins: input.plugins,
  };
}

/** Why an artefact with `previous` inputs does not match `current`, in the user's words; empty when nothing differs. */
export function describeChanges(previous: InputSummary, current: InputSummary, names: { parent?: string; steps: string[] }): string[] {
  const reasons: string[] = [];
  if (previous.source !== current.source) {
    const change = `${shortId(previous.source)} → ${shortId(current.source)}`;
    reasons.push(names.parent ? `parent changed (${names.parent} ${change})` : `source changed (${change})`);
  }
  if (previous.driver !== current.driver) reasons.push("driver options changed");
  const steps = Math.max(previous.provision.length, current.provision.length);
  for (let index = 0; index < steps; index++) {
    if (previous.provision[index] === current.provision[index]) continue;
    if (index >= current.provision.length) reasons.push(`provision[${index}] removed`);
    else if (index >= previous.provision.length) reasons.push(`provision[${index}] ${names.steps[index]} added`);
    else reasons.push(`provision[${index}] ${names.steps[index]} changed`);
  }
  if (previous.verify !== current.verify) reasons.push("verify changed");
  if (previous.plugins && current.plugins) {
    const changed = pluginChanges(previous.plugins, current.plugins);
    if (changed.length > 0) reasons.push(`plugin changed (${changed.join(", ")})`);
  }
  return reasons;
}

/** `@kiln/driver-docker 0.1.0 → 0.2.0`, `kiln-driver-foo added`… for every package whose version differs. */
function pluginChanges(previous: string[], current: string[]): string[] {
  const split = (id: string) => {
    const at = id.lastIndexOf("@");
    return at > 0 ? ([id.slice(0, at), id.slice(at + 1)] as const) : ([id, ""] as const);
  };
  const before = new Map(previous.map(split));
  const after = new Map(current.map(split));
  const names = [...new Set([...before.keys(), ...after.keys()])].sort();
  return names.flatMap((name) => {
    const [was, now] = [before.get(name), after.get(name)];
    if (was === now) return [];
    if (was === undefined) return [`${name} ${now} added`];
    if (now === undefined) return [`${name} ${was} removed`];
    return [`${name} ${was} → ${now}`];
  });
}

export function parseInputSummary(label: string | undefined): InputSummary | undefined {
  if (!label) return undefined;
  try {
    const parsed = JSON.parse(label) as InputSummary;
    return Array.isArray(parsed.provision) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

function bakeKeyPart(value: unknown, variables: Record<string, VariableValue>): string {
  const secrets = Object.values(variables)
    .filter((variable) => variable.sensitive && variable.value.length > 0)
    .map((variable) => variable.value)
    .sort((a, b) => b.length - a.length);
  const text = secrets.reduce(
    (result, secret) => result.split(secret).join(`<sensitive:${sha256(secret).slice(0, 16)}>`),
    canonicalJson(value ?? null),
  );
  return sha256(text);
}

function shortId(id: string): string {
  return id.replace(/^sha256:/, "").slice(0, 12);
}

import { createHash } from "node:crypto";
import type { VerifyScenario } from "./config/verify-schema.js";
import type { SourceRef, VariableValue } from "./types.js";

export interface BakeKeyInput {
  driver: string;
  driverOptions: unknown;
  source: SourceRef;
  provision: { name: string; options: unknown; fingerprint: string }[];
  verify: VerifyScenario[];
}

export function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/**
 * sha256 over everything that decides the image's content: driver and options, the resolved source (a parent's artefact id
 * for `from:`), each provisioner with options and content fingerprint, and the verify block. Sensitive values enter only as
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
}

export function inputSummary(input: BakeKeyInput, variables: Record<string, VariableValue>): InputSummary {
  const short = (value: unknown) => bakeKeyPart(value, variables).slice(0, 12);
  return {
    driver: short({ driver: input.driver, options: input.driverOptions }),
    source: input.source.id,
    provision: input.provision.map((step) => short(step)),
    verify: short(input.verify),
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
  return reasons;
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
  const text = secrets.reduce((result, secret) => result.split(secret).join(`<sensitive:${sha256(secret).slice(0, 16)}>`), canonicalJson(value ?? null));
  return sha256(text);
}

function shortId(id: string): string {
  return id.replace(/^sha256:/, "").slice(0, 12);
}

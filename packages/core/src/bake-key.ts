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
  const secrets = Object.values(variables)
    .filter((variable) => variable.sensitive && variable.value.length > 0)
    .map((variable) => variable.value)
    .sort((a, b) => b.length - a.length);
  const hideSecrets = (text: string): string =>
    secrets.reduce((result, secret) => result.split(secret).join(`<sensitive:${sha256(secret).slice(0, 16)}>`), text);
  const material = {
    driver: input.driver,
    options: input.driverOptions,
    source: { id: input.source.id, digest: input.source.digest ?? null },
    provision: input.provision,
    verify: input.verify.length > 0 ? input.verify : null,
  };
  return sha256(hideSecrets(canonicalJson(material)));
}

/** JSON with object keys sorted, so equal values always give equal text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) =>
    item !== null && typeof item === "object" && !Array.isArray(item)
      ? Object.fromEntries(Object.entries(item).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : item,
  );
}

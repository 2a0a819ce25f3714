import type { EmulatorContext } from "../context.js";
import { Ec2Error, notFound } from "../errors.js";
import { generateKey, importPublicKey } from "../keys.js";
import { matchesFilters } from "../query.js";
import { type KeyPairRecord, newId, tagSet } from "../state.js";
import { fields, set } from "../xml.js";
import type { ActionHandler } from "./types.js";

function addKeyPair(record: Omit<KeyPairRecord, "keyPairId" | "createTime">, ctx: EmulatorContext): KeyPairRecord {
  if (ctx.state.keyPairs.has(record.keyName))
    throw new Ec2Error("InvalidKeyPair.Duplicate", `The keypair '${record.keyName}' already exists.`);
  const full = { ...record, keyPairId: newId("key"), createTime: new Date() };
  ctx.state.keyPairs.set(record.keyName, full);
  return full;
}

export const CreateKeyPair: ActionHandler = (ctx, params) => {
  const keyName = params.require("KeyName");
  const keyType = params.get("KeyType") ?? "rsa";
  if (keyType !== "rsa" && keyType !== "ed25519")
    throw new Ec2Error("InvalidParameterValue", `Value (${keyType}) for parameter KeyType is invalid`);
  if ((params.get("KeyFormat") ?? "pem") !== "pem") throw new Ec2Error("InvalidParameterValue", "The emulator only supports KeyFormat pem");
  if (ctx.state.keyPairs.has(keyName)) throw new Ec2Error("InvalidKeyPair.Duplicate", `The keypair '${keyName}' already exists.`);
  const key = generateKey(keyType);
  const record = addKeyPair(
    { keyName, keyType, keyFingerprint: key.fingerprint, publicKey: key.publicKey, tags: params.tagSpecifications("key-pair") },
    ctx,
  );
  return fields({
    keyName,
    keyFingerprint: record.keyFingerprint,
    keyMaterial: key.privateKey,
    keyPairId: record.keyPairId,
    tagSet: set(tagSet(record.tags)),
  });
};

export const ImportKeyPair: ActionHandler = (ctx, params) => {
  const keyName = params.require("KeyName");
  // The SDK base64-encodes PublicKeyMaterial (a blob) on the wire.
  const material = Buffer.from(params.require("PublicKeyMaterial"), "base64").toString("utf8");
  const key = importPublicKey(material);
  const record = addKeyPair(
    {
      keyName,
      keyType: key.keyType,
      keyFingerprint: key.fingerprint,
      publicKey: key.publicKey,
      tags: params.tagSpecifications("key-pair"),
    },
    ctx,
  );
  return fields({ keyFingerprint: record.keyFingerprint, keyName, keyPairId: record.keyPairId, tagSet: set(tagSet(record.tags)) });
};

export const DescribeKeyPairs: ActionHandler = (ctx, params) => {
  const names = params.list("KeyName");
  const ids = params.list("KeyPairId");
  const all = [...ctx.state.keyPairs.values()];
  for (const name of names) if (!ctx.state.keyPairs.has(name)) throw notFound("keyPair", name);
  for (const id of ids) if (!all.some((k) => k.keyPairId === id)) throw notFound("keyPair", id);
  const includePublicKey = params.get("IncludePublicKey") === "true";
  const filters = params.filters();
  const selected = all.filter(
    (k) =>
      (names.length === 0 || names.includes(k.keyName)) &&
      (ids.length === 0 || ids.includes(k.keyPairId)) &&
      matchesFilters(
        filters,
        k.tags,
        (name) => ({ "key-name": [k.keyName], "key-pair-id": [k.keyPairId], fingerprint: [k.keyFingerprint] })[name],
      ),
  );
  return fields({
    keySet: set(
      selected.map((k) => ({
        keyPairId: k.keyPairId,
        keyFingerprint: k.keyFingerprint,
        keyName: k.keyName,
        keyType: k.keyType,
        tagSet: set(tagSet(k.tags)),
        publicKey: includePublicKey ? k.publicKey : undefined,
        createTime: k.createTime.toISOString(),
      })),
    ),
  });
};

/** Like EC2, deleting a key pair that does not exist succeeds. */
export const DeleteKeyPair: ActionHandler = (ctx, params) => {
  const name = params.get("KeyName");
  const id = params.get("KeyPairId");
  if (!name && !id) throw new Ec2Error("MissingParameter", "The request must contain the parameter KeyName or KeyPairId");
  const record = [...ctx.state.keyPairs.values()].find((k) => k.keyName === name || k.keyPairId === id);
  if (record) ctx.state.keyPairs.delete(record.keyName);
  return fields({ return: true, keyPairId: record?.keyPairId });
};

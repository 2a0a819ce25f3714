import { createHash, generateKeyPairSync } from "node:crypto";
import ssh2 from "ssh2";
import { Ec2Error } from "./errors.js";

// ssh2 is CommonJS: Node's ESM loader cannot see its named exports, so take `utils` off the default export.
const { utils } = ssh2;

export interface GeneratedKey {
  /** What EC2 returns as KeyMaterial: OpenSSH format for ed25519, PKCS#1 PEM for RSA. */
  privateKey: string;
  /** `ssh-… AAAA…` line. */
  publicKey: string;
  fingerprint: string;
}

/**
 * Generates a key pair the way EC2 hands it out. ed25519 goes through ssh2 because node:crypto cannot write OpenSSH format and
 * ssh2 cannot read ed25519 PKCS#8; ssh2's generator drops a leading zero byte of the public key about 1 time in 170, so a key
 * that does not parse back is drawn again.
 */
export function generateKey(type: "ed25519" | "rsa"): GeneratedKey {
  if (type === "rsa") {
    const { privateKey } = generateKeyPairSync("rsa", {
      modulusLength: 2048,
      privateKeyEncoding: { type: "pkcs1", format: "pem" },
      publicKeyEncoding: { type: "spki", format: "pem" },
    });
    const publicKey = publicLine(privateKey);
    // EC2 fingerprints a key it created as the SHA-1 of the private key's DER, colon-separated hex.
    const der = Buffer.from(privateKey.replace(/-----[^-]+-----|\s/g, ""), "base64");
    return { privateKey, publicKey, fingerprint: colonHex(createHash("sha1").update(der).digest()) };
  }
  for (;;) {
    const pair = utils.generateKeyPairSync("ed25519");
    if (utils.parseKey(pair.private) instanceof Error) continue;
    return { privateKey: pair.private, publicKey: pair.public, fingerprint: sha256Fingerprint(pair.public) };
  }
}

/** Parses an imported public key (OpenSSH line) and returns its normalised line, type and fingerprint. */
export function importPublicKey(material: string): { publicKey: string; keyType: "ed25519" | "rsa"; fingerprint: string } {
  const parsed = utils.parseKey(material.trim());
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || key instanceof Error) throw new Ec2Error("InvalidKey.Format", "Key is not in valid OpenSSH public key format");
  const keyType = key.type === "ssh-ed25519" ? "ed25519" : key.type === "ssh-rsa" ? "rsa" : undefined;
  if (!keyType) throw new Ec2Error("InvalidKey.Format", `Key type ${key.type} is not supported; use ssh-ed25519 or ssh-rsa`);
  const publicKey = `${key.type} ${key.getPublicSSH().toString("base64")}`;
  // EC2 fingerprints imported RSA keys as MD5 of the public blob, ed25519 as SHA-256.
  const fingerprint = keyType === "rsa" ? colonHex(createHash("md5").update(key.getPublicSSH()).digest()) : sha256Fingerprint(publicKey);
  return { publicKey, keyType, fingerprint };
}

function publicLine(privateKey: string): string {
  const key = utils.parseKey(privateKey);
  if (key instanceof Error) throw key;
  const single = Array.isArray(key) ? key[0] : key;
  if (!single) throw new Error("generated key did not parse");
  return `${single.type} ${single.getPublicSSH().toString("base64")}`;
}

function sha256Fingerprint(publicLine: string): string {
  const blob = Buffer.from(publicLine.split(" ")[1] ?? "", "base64");
  return `${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}=`;
}

function colonHex(digest: Buffer): string {
  return digest.toString("hex").replace(/(..)(?!$)/g, "$1:");
}

import { CreateKeyPairCommand, DeleteKeyPairCommand, DescribeKeyPairsCommand, ImportKeyPairCommand } from "@aws-sdk/client-ec2";
import { utils } from "ssh2";
import { describe, expect, it } from "vitest";
import { ec2Client, errorName, testEmulator } from "./helpers.js";

describe("key pairs", () => {
  it("creates ed25519 and rsa key pairs whose private keys parse, describes and deletes them", async () => {
    await using emulator = await testEmulator();
    const client = ec2Client(emulator);
    const ed = await client.send(new CreateKeyPairCommand({ KeyName: "kiln-ed", KeyType: "ed25519" }));
    expect(ed.KeyMaterial).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY-----/);
    expect(utils.parseKey(ed.KeyMaterial ?? "")).not.toBeInstanceOf(Error);
    expect(ed.KeyPairId).toMatch(/^key-[0-9a-f]{17}$/);
    const rsa = await client.send(new CreateKeyPairCommand({ KeyName: "kiln-rsa", KeyType: "rsa" }));
    expect(rsa.KeyMaterial).toMatch(/^-----BEGIN RSA PRIVATE KEY-----/);
    expect(rsa.KeyFingerprint).toMatch(/^([0-9a-f]{2}:){19}[0-9a-f]{2}$/);

    const { KeyPairs } = await client.send(new DescribeKeyPairsCommand({ IncludePublicKey: true }));
    expect(KeyPairs?.map((k) => [k.KeyName, k.KeyType]).sort()).toEqual([
      ["kiln-ed", "ed25519"],
      ["kiln-rsa", "rsa"],
    ]);
    expect(KeyPairs?.find((k) => k.KeyName === "kiln-ed")?.PublicKey).toMatch(/^ssh-ed25519 AAAA/);
    expect(await errorName(client.send(new CreateKeyPairCommand({ KeyName: "kiln-ed" })))).toBe("InvalidKeyPair.Duplicate");

    await client.send(new DeleteKeyPairCommand({ KeyName: "kiln-ed" }));
    await client.send(new DeleteKeyPairCommand({ KeyPairId: rsa.KeyPairId }));
    expect(await errorName(client.send(new DescribeKeyPairsCommand({ KeyNames: ["kiln-ed"] })))).toBe("InvalidKeyPair.NotFound");
    expect(emulator.resources().keyPairs).toEqual([]);
  });

  it("imports a public key and filters by name", async () => {
    await using emulator = await testEmulator();
    const client = ec2Client(emulator);
    const pair = utils.generateKeyPairSync("rsa", { bits: 2048 });
    const imported = await client.send(new ImportKeyPairCommand({ KeyName: "imported", PublicKeyMaterial: Buffer.from(pair.public) }));
    expect(imported.KeyFingerprint).toMatch(/^([0-9a-f]{2}:){15}[0-9a-f]{2}$/);
    const { KeyPairs } = await client.send(new DescribeKeyPairsCommand({ Filters: [{ Name: "key-name", Values: ["imp*"] }] }));
    expect(KeyPairs?.map((k) => k.KeyName)).toEqual(["imported"]);
    expect(await errorName(client.send(new ImportKeyPairCommand({ KeyName: "bad", PublicKeyMaterial: Buffer.from("not a key") })))).toBe(
      "InvalidKey.Format",
    );
  });
});

import { readFile } from "node:fs/promises";
import { request } from "node:https";
import { randomBytes } from "node:crypto";
import { connect } from "node:net";
import Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LABELS } from "@kiln/core";
import {
  ensureFixtureImage,
  FIXTURE_IMAGE,
  followStream,
  startRegistry,
  startSecondEngine,
  type SecondEngine,
  type TestRegistry,
} from "../src/testing.js";

// The registries the registry tests run against, proved with the engine alone (no Kiln code): a push from this machine's engine,
// a pull into a fresh one (an empty image store), and the pulled image runs with the fixture's files.
const runId = `infra-${randomBytes(4).toString("hex")}`;
const credentials = { user: "kiln", password: `pw-${randomBytes(6).toString("hex")}` };
const local = new Docker({ socketPath: "/var/run/docker.sock", host: undefined });
let fresh: SecondEngine;
let plain: TestRegistry;
let secured: TestRegistry;
const pushed: string[] = [];

beforeAll(async () => {
  await ensureFixtureImage();
  [fresh, plain, secured] = await Promise.all([startSecondEngine(), startRegistry(), startRegistry({ tls: true, htpasswd: credentials })]);
}, 600_000);

afterAll(async () => {
  for (const reference of pushed)
    await local
      .getImage(reference)
      .remove({ noprune: true })
      .catch(() => {});
  await Promise.all([fresh?.stop(), plain?.stop(), secured?.stop()]);
});

/** Tags the fixture into `registry`, pushes it (with `auth` when given), and returns the reference and its repository digest. */
async function pushFixture(registry: TestRegistry, auth?: Docker.AuthConfig): Promise<{ reference: string; digest: string }> {
  const repo = `${registry.address}/kiln-${runId}`;
  await local.getImage(FIXTURE_IMAGE).tag({ repo, tag: "1" });
  pushed.push(`${repo}:1`);
  // Anonymous is `{}`, not nothing: the engine answers a push without an X-Registry-Auth header with 400.
  const events = await followStream(local, await local.getImage(`${repo}:1`).push({ authconfig: auth ?? {} }));
  const digest = events.map((event) => (event.aux as { Digest?: string } | undefined)?.Digest).find(Boolean);
  expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
  return { reference: `${repo}:1`, digest: digest as string };
}

/** "pulled", or the engine's reason for not pulling `reference` into the fresh engine. */
function pullOutcome(reference: string, auth?: Docker.AuthConfig): Promise<string> {
  return fresh.api
    .pull(reference, auth ? { authconfig: auth } : {})
    .then((stream) => followStream(fresh.api, stream))
    .then(
      () => "pulled",
      (error: Error) => error.message,
    );
}

/** Pulls into the fresh engine, runs the image there, and removes both: what a second machine sees. */
async function pullAndRead(reference: string, auth?: Docker.AuthConfig): Promise<{ id: string; digests: string[]; output: string }> {
  await followStream(fresh.api, await fresh.api.pull(reference, { ...(auth ? { authconfig: auth } : {}) }));
  const info = await fresh.api.getImage(reference).inspect();
  const container = await fresh.api.createContainer({
    Image: reference,
    Cmd: ["cat", "/etc/debian_version"],
    Labels: { [LABELS.build]: runId },
  });
  try {
    await container.start();
    await container.wait();
    const logs = (await container.logs({ stdout: true })) as unknown as Buffer;
    return { id: info.Id, digests: info.RepoDigests ?? [], output: logs.subarray(8).toString() };
  } finally {
    await container.remove({ force: true });
    await fresh.api.getImage(reference).remove({ force: true });
  }
}

describe("the test registries, through the real engine", () => {
  it("a plain registry takes a push and gives the same image back to a fresh engine", async () => {
    const { reference, digest } = await pushFixture(plain);
    const pulled = await pullAndRead(reference);
    expect(pulled.id).toBe((await local.getImage(FIXTURE_IMAGE).inspect()).Id);
    expect(pulled.digests).toContain(`${reference.slice(0, reference.lastIndexOf(":"))}@${digest}`);
    expect(pulled.output).toMatch(/^12\./);
    expect(await fresh.api.listImages()).toEqual([]);
  });

  it("a TLS + htpasswd registry serves its CA's certificate, refuses anonymous pulls and takes a logged-in push and pull", async () => {
    expect(secured.caPath).toBeDefined();
    // The registry asks for credentials over HTTPS with a certificate its CA vouches for.
    expect(await statusWithCa(`https://${secured.address}/v2/`, await readFile(secured.caPath as string))).toBe(401);
    const auth = { username: credentials.user, password: credentials.password, serveraddress: secured.address };
    // 127.0.0.0/8 is insecure to Docker by default: the engine accepts the self-signed chain without insecure-registries.
    const { reference, digest } = await pushFixture(secured, auth);
    const anonymous = await pullOutcome(reference);
    // The engine's words vary (after the 401 over HTTPS it retries plain HTTP, as for any insecure registry): what counts is
    // that nothing arrived.
    expect(anonymous).not.toBe("pulled");
    expect(await fresh.api.listImages()).toEqual([]);
    const wrong = { ...auth, password: "wrong" };
    const refused = await pullOutcome(reference, wrong);
    expect(refused).not.toBe("pulled");
    expect(await fresh.api.listImages()).toEqual([]);
    const pulled = await pullAndRead(reference, auth);
    expect(pulled.digests).toContain(`${reference.slice(0, reference.lastIndexOf(":"))}@${digest}`);
    expect(pulled.output).toMatch(/^12\./);
  });

  it("stop() ends the registry: its port stops answering", async () => {
    const extra = await startRegistry({ tls: true });
    const [host, port] = extra.address.split(":") as [string, string];
    expect(await accepts(host, Number(port))).toBe(true);
    await extra.stop();
    expect(await accepts(host, Number(port))).toBe(false);
  });
});

/** Whether something accepts TCP connections at host:port. */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: 5_000 }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on("timeout", () => socket.destroy());
    socket.on("error", () => resolve(false));
    socket.on("close", () => resolve(false));
  });
}

/** The HTTP status of a GET trusting only `ca`, or 0 when nothing answers. */
function statusWithCa(url: string, ca: Buffer | undefined): Promise<number> {
  return new Promise((resolve) => {
    const call = request(url, { timeout: 5_000, ...(ca ? { ca } : {}) }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    call.on("timeout", () => call.destroy());
    call.on("error", () => resolve(0));
    call.end();
  });
}

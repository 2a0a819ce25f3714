import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestContext, runOutside, testPluginInit } from "@kiln/test-suite";
import docker from "../src/index.js";
import { ensureFixtureImage, FIXTURE_IMAGE } from "../src/testing.js";

/**
 * A second engine on this machine, with its own socket, data root and bridge: as far as Kiln can tell, a remote one named by
 * DOCKER_HOST. Its bridge is its own (in TEST-NET-1, which nothing routes), and it writes no iptables rules: started with
 * `--bridge=none` instead, dockerd deletes the first engine's docker0.
 */
async function startSecondEngine(): Promise<{ host: string; api: Docker; stop: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "kiln-engine-"));
  const socket = join(dir, "docker.sock");
  const bridge = `kilnbr-${randomBytes(3).toString("hex")}`;
  await run("ip", ["link", "add", bridge, "type", "bridge"]);
  await run("ip", ["addr", "add", "192.0.2.1/24", "dev", bridge]);
  await run("ip", ["link", "set", bridge, "up"]);
  const args = [
    `--host=unix://${socket}`,
    `--data-root=${join(dir, "data")}`,
    `--exec-root=${join(dir, "exec")}`,
    `--pidfile=${join(dir, "docker.pid")}`,
  ];
  const daemon = spawn("dockerd", [...args, `--bridge=${bridge}`, "--iptables=false", "--ip-masq=false"], { stdio: "ignore" });
  const api = new Docker({ socketPath: socket });
  for (
    let attempt = 0;
    !(await api.ping().then(
      () => true,
      () => false,
    ));
    attempt++
  ) {
    if (attempt > 100 || daemon.exitCode !== null)
      throw new Error(`the second dockerd did not start (install docker.io); exit ${daemon.exitCode}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const stop = async () => {
    const exited = new Promise((resolve) => daemon.once("exit", resolve));
    daemon.kill("SIGTERM");
    await exited;
    await run("ip", ["link", "del", bridge]);
    await rm(dir, { recursive: true, force: true });
  };
  return { host: `unix://${socket}`, api, stop };
}

const run = promisify(execFile);

describe("docker driver on the engine DOCKER_HOST names", () => {
  let engine: Awaited<ReturnType<typeof startSecondEngine>>;
  const saved = process.env.DOCKER_HOST;

  beforeAll(async () => {
    await ensureFixtureImage();
    engine = await startSecondEngine();
    // The fixture travels to the other engine as `docker save | docker load` would carry it.
    await engine.api.loadImage(await new Docker().getImage(FIXTURE_IMAGE).get());
    process.env.DOCKER_HOST = engine.host;
  }, 600_000);

  afterAll(async () => {
    if (saved === undefined) delete process.env.DOCKER_HOST;
    else process.env.DOCKER_HOST = saved;
    await engine?.stop();
  });

  it("leaves the first engine's network alone: its containers still start on their bridge", async () => {
    await using test = createTestContext();
    const first = new Docker({ socketPath: "/var/run/docker.sock" });
    const container = await first.createContainer({ Image: FIXTURE_IMAGE, Cmd: ["true"], Labels: { ...test.ctx.resourceLabels } });
    try {
      await container.start();
      expect(((await container.wait()) as { StatusCode: number }).StatusCode).toBe(0);
    } finally {
      await container.remove({ force: true });
    }
  });

  it("launches there, and its connection names that engine, so `docker -H` from outside reaches the same container", async () => {
    const driver = docker(testPluginInit("driver", "docker"));
    await using test = createTestContext();
    const source = await driver.resolveSource(test.ctx, { source: FIXTURE_IMAGE });
    await using machine = await driver.launch(test.ctx, source, { source: FIXTURE_IMAGE });
    expect(machine.connection).toMatchObject({ kind: "docker", host: engine.host, user: "root" });
    await machine.exec("echo on-the-other-engine > /tmp/where");
    const outside = await runOutside(machine.connection, ["cat", "/tmp/where"]);
    expect(outside, outside.stderr).toMatchObject({ exitCode: 0, stdout: "on-the-other-engine\n" });
    // The default engine has no such container: the descriptor did not fall back to it.
    const local = await new Docker({ socketPath: "/var/run/docker.sock" })
      .getContainer(machine.id)
      .inspect()
      .then(
        () => true,
        () => false,
      );
    expect(local).toBe(false);
    expect(machine.attachCommand()).toContain(`docker -H ${engine.host} exec -it ${machine.id}`);
  });
});

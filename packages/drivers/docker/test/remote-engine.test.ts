import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { KilnError, LABELS } from "@kiln/core";
import { createTestContext, freePort, runOutside, testPluginInit } from "@kiln/test-suite";
import docker from "../src/index.js";
import { ensureFixtureImage, FIXTURE_IMAGE, loadImageInto, startSecondEngine, type SecondEngine } from "../src/testing.js";

const run = promisify(execFile);

/** The variables that choose an engine, all unset unless a test sets them: the machine's own settings must not leak in. */
const ENGINE_VARIABLES = ["DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_TLS", "DOCKER_CERT_PATH", "DOCKER_CONTEXT", "DOCKER_CONFIG", "HOME"];

/** Sets the engine variables for one test (the rest unset), restoring them when it finishes. */
function useEnvironment(variables: Partial<Record<(typeof ENGINE_VARIABLES)[number], string>>): void {
  const saved = Object.fromEntries(ENGINE_VARIABLES.map((name) => [name, process.env[name]]));
  for (const name of ENGINE_VARIABLES) {
    const value = variables[name] ?? (name === "HOME" ? saved.HOME : undefined);
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  onTestFinished(() => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });
}

/** Launches the fixture with a driver made now (it connects to whatever the environment names at this point), and writes a file. */
async function launchAndMark(test: ReturnType<typeof createTestContext>, mark: string) {
  const driver = docker(testPluginInit("driver", "docker"));
  const source = await driver.resolveSource(test.ctx, { source: FIXTURE_IMAGE });
  const machine = await driver.launch(test.ctx, source, { source: FIXTURE_IMAGE });
  await machine.exec(`echo ${mark} > /tmp/where`);
  return { driver, machine };
}

const isOn = (api: Docker, container: string) =>
  api
    .getContainer(container)
    .inspect()
    .then(
      () => true,
      () => false,
    );

const first = new Docker({ socketPath: "/var/run/docker.sock", host: undefined });
let engine: SecondEngine;

beforeAll(async () => {
  await ensureFixtureImage();
  engine = await startSecondEngine({ tcp: true });
  await loadImageInto(engine.api, FIXTURE_IMAGE, first);
}, 600_000);

afterAll(async () => {
  await engine?.stop();
});

describe("docker driver on the engine DOCKER_HOST names", () => {
  it("leaves the first engine's network alone: its containers still start on their bridge", async () => {
    await using test = createTestContext();
    const container = await first.createContainer({ Image: FIXTURE_IMAGE, Cmd: ["true"], Labels: { ...test.ctx.resourceLabels } });
    try {
      await container.start();
      expect(((await container.wait()) as { StatusCode: number }).StatusCode).toBe(0);
    } finally {
      await container.remove({ force: true });
    }
  });

  it("launches there, and its connection names that engine, so `docker -H` from outside reaches the same container", async () => {
    useEnvironment({ DOCKER_HOST: engine.host });
    await using test = createTestContext();
    const { machine } = await launchAndMark(test, "on-the-other-engine");
    expect(machine.connection).toMatchObject({ kind: "docker", host: engine.host, user: "root" });
    const outside = await runOutside(machine.connection, ["cat", "/tmp/where"]);
    expect(outside, outside.stderr).toMatchObject({ exitCode: 0, stdout: "on-the-other-engine\n" });
    // The default engine has no such container: the descriptor did not fall back to it.
    expect(await isOn(first, machine.id)).toBe(false);
    expect(machine.attachCommand()).toContain(`docker -H ${engine.host} exec -it ${machine.id}`);
  });

  it("bakes over tcp:// with TLS (DOCKER_TLS_VERIFY, DOCKER_CERT_PATH): launch, exec, capture, and the artefact runs there", async () => {
    useEnvironment({ DOCKER_HOST: engine.tcpHost ?? "", DOCKER_TLS_VERIFY: "1", DOCKER_CERT_PATH: engine.certPath ?? "" });
    await using test = createTestContext();
    const { driver, machine } = await launchAndMark(test, "baked-over-tls");
    expect(machine.connection).toMatchObject({ host: engine.tcpHost, tls: { certPath: engine.certPath, verify: true } });
    // The docker CLI, given only the descriptor (-H tcp://… --tlsverify --tlscacert …), reaches the container too.
    const outside = await runOutside(machine.connection, ["cat", "/tmp/where"]);
    expect(outside, outside.stderr).toMatchObject({ exitCode: 0, stdout: "baked-over-tls\n" });
    const artifact = await driver.capture(
      test.ctx,
      machine,
      { labels: { [LABELS.build]: test.runId }, tags: [] },
      { source: FIXTURE_IMAGE },
    );
    try {
      expect((await engine.api.getImage(artifact.id).inspect()).Id).toBe(artifact.id);
      expect(
        await first
          .getImage(artifact.id)
          .inspect()
          .then(
            () => "here",
            () => "absent",
          ),
      ).toBe("absent");
      await using verify = await driver.launchArtifact(test.ctx, artifact, {}, { source: FIXTURE_IMAGE });
      expect((await verify.exec("cat /tmp/where")).stdout).toBe("baked-over-tls\n");
    } finally {
      await driver.remove(artifact, { source: FIXTURE_IMAGE });
    }
  });

  it("with only ca.pem in DOCKER_CERT_PATH it still connects, and the engine (which verifies clients) is what refuses", async () => {
    const onlyCa = await mkdtemp(join(tmpdir(), "kiln-only-ca-"));
    onTestFinished(() => rm(onlyCa, { recursive: true, force: true }));
    await copyFile(join(engine.certPath ?? "", "ca.pem"), join(onlyCa, "ca.pem"));
    useEnvironment({ DOCKER_HOST: engine.tcpHost ?? "", DOCKER_TLS_VERIFY: "1", DOCKER_CERT_PATH: onlyCa });
    await using test = createTestContext();
    const driver = docker(testPluginInit("driver", "docker"));
    const error = await driver.resolveSource(test.ctx, { source: FIXTURE_IMAGE }).catch((e: unknown) => e);
    // Not docker-modem's own ENOENT for cert.pem: a server that verifies no client would have answered.
    expect(String((error as Error).message)).toMatch(/bad certificate/);
  });

  it("with DOCKER_TLS_VERIFY but no CA certificate where DOCKER_CERT_PATH (default: the docker config dir) points, says so", async () => {
    const empty = await mkdtemp(join(tmpdir(), "kiln-no-certs-"));
    onTestFinished(() => rm(empty, { recursive: true, force: true }));
    useEnvironment({ DOCKER_HOST: engine.tcpHost ?? "", DOCKER_TLS_VERIFY: "1", DOCKER_CONFIG: empty });
    await using test = createTestContext();
    const driver = docker(testPluginInit("driver", "docker"));
    const error = await driver.resolveSource(test.ctx, { source: FIXTURE_IMAGE }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KilnError);
    expect((error as KilnError).message).toBe(`driver "docker": no ca.pem in ${empty} to verify ${engine.tcpHost} with`);
  });
});

describe("docker driver on the engine a docker context names", () => {
  let home: string;
  /** The docker CLI's own `docker context create/use`, writing under `home` only. */
  const dockerCli = (...args: string[]) =>
    run("docker", args, { timeout: 30_000, env: { PATH: process.env.PATH, HOME: home } }).then(({ stdout }) => stdout.trim());
  const tlsDirOf = (name: string) => join(home, ".docker", "contexts", "tls", createHash("sha256").update(name).digest("hex"), "docker");

  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), "kiln-docker-home-"));
    const certs = engine.certPath ?? "";
    const files = `ca=${join(certs, "ca.pem")},cert=${join(certs, "cert.pem")},key=${join(certs, "key.pem")}`;
    await dockerCli("context", "create", "kiln-tls", "--docker", `host=${engine.tcpHost},${files}`);
    await dockerCli("context", "create", "kiln-socket", "--docker", `host=${engine.host}`);
    const clientOnly = `cert=${join(certs, "cert.pem")},key=${join(certs, "key.pem")},skip-tls-verify=true`;
    await dockerCli("context", "create", "kiln-unverified", "--docker", `host=${engine.tcpHost},${clientOnly}`);
    await dockerCli("context", "use", "kiln-tls");
  });

  afterAll(async () => {
    if (home) await rm(home, { recursive: true, force: true });
  });

  it("follows `docker context use` (config.json's currentContext under $HOME/.docker): tcp with the context's TLS files", async () => {
    useEnvironment({ HOME: home });
    await using test = createTestContext();
    const { machine } = await launchAndMark(test, "by-current-context");
    expect(await isOn(engine.api, machine.id)).toBe(true);
    expect(machine.connection).toMatchObject({ host: engine.tcpHost, tls: { certPath: tlsDirOf("kiln-tls"), verify: true } });
    // What `docker context inspect` reports is what the connection carries.
    const inspected = JSON.parse(await dockerCli("context", "inspect", "kiln-tls")) as [{ Endpoints: { docker: { Host: string } } }];
    expect(inspected[0].Endpoints.docker.Host).toBe(engine.tcpHost);
    const outside = await runOutside(machine.connection, ["cat", "/tmp/where"]);
    expect(outside, outside.stderr).toMatchObject({ exitCode: 0, stdout: "by-current-context\n" });
  });

  it("takes DOCKER_CONTEXT over currentContext (with DOCKER_CONFIG naming the config dir)", async () => {
    useEnvironment({ DOCKER_CONFIG: join(home, ".docker"), DOCKER_CONTEXT: "kiln-socket" });
    await using test = createTestContext();
    const { machine } = await launchAndMark(test, "by-docker-context");
    expect(machine.connection).toMatchObject({ host: engine.host });
    expect(machine.connection).not.toHaveProperty("tls");
    expect(await isOn(engine.api, machine.id)).toBe(true);
  });

  it("takes DOCKER_HOST over any context, as the docker CLI does", async () => {
    useEnvironment({ HOME: home, DOCKER_CONTEXT: "kiln-socket", DOCKER_HOST: "unix:///var/run/docker.sock" });
    await using test = createTestContext();
    const { machine } = await launchAndMark(test, "by-docker-host");
    expect(machine.connection).toMatchObject({ host: "unix:///var/run/docker.sock" });
    expect(await isOn(first, machine.id)).toBe(true);
    expect(await isOn(engine.api, machine.id)).toBe(false);
  });

  it("a context with skip-tls-verify connects to an engine whose CA it does not hold, presenting its client certificate", async () => {
    useEnvironment({ HOME: home, DOCKER_CONTEXT: "kiln-unverified" });
    await using test = createTestContext();
    const { machine } = await launchAndMark(test, "unverified");
    expect(machine.connection).toMatchObject({ host: engine.tcpHost, tls: { certPath: tlsDirOf("kiln-unverified"), verify: false } });
    // Kiln itself reached it: the command ran there. (The descriptor cannot drive `docker -H … --tls` here: that CLI reads every
    // TLS file it is named, and this context has no ca.pem.)
    expect((await machine.exec("cat /tmp/where")).stdout).toBe("unverified\n");
    expect(await isOn(engine.api, machine.id)).toBe(true);
  });

  it("an engine that does not answer is named with the context that chose it", async () => {
    const port = await freePort();
    await dockerCli("context", "create", "kiln-gone", "--docker", `host=tcp://127.0.0.1:${port}`);
    useEnvironment({ HOME: home, DOCKER_CONTEXT: "kiln-gone" });
    await using test = createTestContext();
    const driver = docker(testPluginInit("driver", "docker"));
    const error = await driver.resolveSource(test.ctx, { source: FIXTURE_IMAGE }).catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: "E_MISSING_TOOL",
      message: expect.stringContaining(`no Docker engine answers at tcp://127.0.0.1:${port} (docker context "kiln-gone")`),
      hint: expect.stringContaining("start that engine"),
    });
  });

  it("a context that does not exist fails with its name and how to list the real ones", async () => {
    useEnvironment({ HOME: home, DOCKER_CONTEXT: "kiln-missing" });
    await using test = createTestContext();
    const driver = docker(testPluginInit("driver", "docker"));
    const error = await driver.resolveSource(test.ctx, { source: FIXTURE_IMAGE }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KilnError);
    expect(error).toMatchObject({ code: "E_CONFIG", message: expect.stringContaining('docker context "kiln-missing" does not exist') });
    expect((error as KilnError).hint).toContain("docker context ls");
  });
});

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KilnError, type Artifact, type Driver } from "@kiln/core";
import { createTestContext, testPluginInit } from "@kiln/test-suite";
import docker, { type DockerOptions } from "../src/index.js";
import { pickDebianMirror, readAptSources } from "@kiln/debootstrap";
import { ensureFixtureImage, FIXTURE_IMAGE, listDockerResources } from "../src/testing.js";

const api = new Docker();
let driver: Driver<DockerOptions>;

beforeAll(async () => {
  await ensureFixtureImage();
  driver = docker(testPluginInit("driver", "docker"));
}, 600_000);

type Launched = Awaited<ReturnType<Driver<DockerOptions>["launch"]>>;

/** Launches a build container, runs `work`, then cleans up as a successful bake would (a failed one removes captures too). */
async function withMachine<T>(
  options: DockerOptions,
  work: (machine: Launched, test: ReturnType<typeof createTestContext>) => Promise<T>,
  runIds: string[] = [],
): Promise<T> {
  const test = createTestContext();
  runIds.push(test.runId);
  try {
    const source = await driver.resolveSource(test.ctx, options);
    const result = await work(await driver.launch(test.ctx, source, options), test);
    await test.cleanup("success");
    return result;
  } catch (error) {
    await test.cleanup("failure");
    throw error;
  }
}

describe("docker driver: sources", () => {
  it("builds a Debian base with debootstrap from the host's apt mirror, labels its provenance, and reuses it", async () => {
    await using test = createTestContext();
    const recipe = { debootstrap: { suite: "bookworm", variant: "minbase" as const, include: ["python3"] } };
    const source = await driver.resolveSource(test.ctx, { source: recipe });
    const mirror = pickDebianMirror(await readAptSources(), "bookworm");
    expect(source.description).toBe("debootstrap bookworm/minbase");
    expect(source.details?.mirror).toBe(mirror);
    const labels = (await api.getImage(source.id).inspect()).Config?.Labels;
    expect(labels).toMatchObject({
      "dev.kiln.debootstrap.suite": "bookworm",
      "dev.kiln.debootstrap.mirror": mirror,
      "dev.kiln.debootstrap.include": "python3",
    });
    const again = await driver.resolveSource(test.ctx, { source: recipe });
    expect(again.id).toBe(source.id);
    await using machine = await driver.launch(test.ctx, source, {});
    expect((await machine.exec("python3 -c 'print(6*7)'")).stdout).toBe("42\n");
  });

  it("resolves a local image reference to its immutable id", async () => {
    await using test = createTestContext();
    const source = await driver.resolveSource(test.ctx, { source: FIXTURE_IMAGE });
    expect(source.id).toBe((await api.getImage(FIXTURE_IMAGE).inspect()).Id);
    expect(source.description).toBe(FIXTURE_IMAGE);
  });

  it("says clearly when an image cannot be pulled", async () => {
    await using test = createTestContext();
    // A registry on a closed loopback port: the pull fails without leaving this machine.
    const error = await driver.resolveSource(test.ctx, { source: "127.0.0.1:9/kiln/missing:1" }).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(KilnError);
    expect((error as KilnError).message).toMatch(/cannot pull image "127.0.0.1:9\/kiln\/missing:1"/);
    expect((error as KilnError).hint).toMatch(/debootstrap/);
  });

  it("does not pull when pull is never", async () => {
    await using test = createTestContext();
    const error = await driver.resolveSource(test.ctx, { source: "kiln/absent:1", pull: "never" }).catch((thrown: unknown) => thrown);
    expect((error as KilnError).message).toMatch(/not present and pull is "never"/);
  });

  it("tells how to start the engine when none answers", async () => {
    const saved = process.env.DOCKER_HOST;
    process.env.DOCKER_HOST = "unix:///nonexistent/docker.sock";
    try {
      await using test = createTestContext();
      const error = await docker(testPluginInit("driver", "docker"))
        .resolveSource(test.ctx, { source: FIXTURE_IMAGE })
        .catch((thrown: unknown) => thrown);
      expect((error as KilnError).code).toBe("E_MISSING_TOOL");
      expect((error as KilnError).hint).toMatch(/apt-get install -y docker.io/);
    } finally {
      if (saved === undefined) delete process.env.DOCKER_HOST;
      else process.env.DOCKER_HOST = saved;
    }
  });
});

describe("docker driver: build container options", () => {
  let hostDir: string;
  beforeAll(async () => {
    hostDir = await mkdtemp(join(tmpdir(), "kiln-volume-"));
    await writeFile(join(hostDir, "from-host.txt"), "mounted");
  });
  afterAll(() => rm(hostDir, { recursive: true, force: true }));

  it("runs privileged only when asked (or reports that the engine refuses it)", async () => {
    const runs: string[] = [];
    const caps = (options: DockerOptions) =>
      withMachine(options, async (m) => (await m.exec("grep CapEff /proc/self/status")).stdout.trim(), runs);
    expect(await caps({ source: FIXTURE_IMAGE })).not.toMatch(/CapEff:\s+0000003f?f{8,}/);
    const privileged = await caps({ source: FIXTURE_IMAGE, privileged: true }).catch((error: unknown) => error);
    // Sandboxed engines (like this project's CI) cannot grant every capability; the refusal must be a clear launch error.
    if (privileged instanceof KilnError) expect(privileged.message).toMatch(/cannot start the build container.*caps/s);
    else expect(privileged).toMatch(/CapEff:\s+0000003f?f{8,}/);
    // Both launches, the refused one too, left nothing behind.
    expect(runs).toHaveLength(2);
    for (const runId of runs) expect(await listDockerResources(runId)).toEqual([]);
  });

  it("mounts volumes", async () => {
    await withMachine({ source: FIXTURE_IMAGE, volumes: { [hostDir]: "/mnt/host:ro" } }, async (machine) => {
      expect((await machine.exec("cat /mnt/host/from-host.txt")).stdout).toBe("mounted");
      expect((await machine.exec("touch /mnt/host/x")).exitCode).not.toBe(0);
    });
  });

  it("runs provisioning as exec_user by default", async () => {
    await withMachine({ source: FIXTURE_IMAGE, exec_user: "nobody" }, async (machine) => {
      expect((await machine.exec("id -un")).stdout).toBe("nobody\n");
      expect((await machine.exec("id -un", { user: "root" })).stdout).toBe("root\n");
    });
  });

  it("accepts a platform and a custom keep-alive run_command", async () => {
    await withMachine({ source: FIXTURE_IMAGE, platform: "linux/amd64", run_command: ["/bin/sleep", "infinity"] }, async (machine) => {
      expect((await machine.exec("uname -m")).stdout).toBe("x86_64\n");
      expect((await machine.exec("cat /proc/1/cmdline | tr '\\0' ' '")).stdout).toBe("/bin/sleep infinity ");
    });
  });

  it("gives an exec timeout as a KilnError and stops waiting", async () => {
    await withMachine({ source: FIXTURE_IMAGE }, async (machine) => {
      const error = await machine.exec("sleep 30", { timeout: 300 }).catch((thrown: unknown) => thrown);
      expect((error as KilnError).code).toBe("E_TIMEOUT");
      expect((await machine.exec("pgrep -x sleep || echo none")).stdout).toContain("none");
    });
  });
});

describe("docker driver: capture", () => {
  const artifacts: Artifact[] = [];
  afterAll(async () => {
    for (const artifact of artifacts) await driver.remove(artifact);
  });

  async function capture(options: DockerOptions): Promise<Docker.ImageInspectInfo> {
    return withMachine(options, async (machine, test) => {
      await machine.exec("mkdir -p /srv && echo page > /srv/index.html");
      const artifact = await driver.capture(test.ctx, machine, { labels: { "dev.kiln.image": "capture-test" }, tags: [] }, options);
      artifacts.push(artifact);
      return api.getImage(artifact.id).inspect();
    });
  }

  it("keeps the source's entrypoint and command, not the build container's keep-alive", async () => {
    const image = await capture({ source: FIXTURE_IMAGE });
    expect(image.Config.Entrypoint ?? []).toEqual([]);
    expect(image.Config.Cmd ?? []).toEqual([]);
    expect(image.Config.Labels).toMatchObject({ "dev.kiln.image": "capture-test" });
  });

  it("applies structured image config changes", async () => {
    const image = await capture({
      source: FIXTURE_IMAGE,
      changes: {
        cmd: ["python3", "-m", "http.server", "8080"],
        env: { APP_MODE: "prod" },
        workdir: "/srv",
        expose: [8080, "53/udp"],
        user: "nobody",
        labels: { team: "web" },
        stop_signal: "SIGINT",
      },
    });
    expect(image.Config.Cmd).toEqual(["python3", "-m", "http.server", "8080"]);
    expect(image.Config.Env).toContain("APP_MODE=prod");
    expect(image.Config.WorkingDir).toBe("/srv");
    expect(Object.keys(image.Config.ExposedPorts ?? {}).sort()).toEqual(["53/udp", "8080/tcp"]);
    expect(image.Config.User).toBe("nobody");
    expect(image.Config.Labels).toMatchObject({ team: "web" });
  });

  it("applies Dockerfile-style changes like Packer", async () => {
    const image = await capture({
      source: FIXTURE_IMAGE,
      changes: ["ENV GREETING=hello", 'CMD ["cat", "/srv/index.html"]', "EXPOSE 9000"],
    });
    expect(image.Config.Env).toContain("GREETING=hello");
    expect(image.Config.Cmd).toEqual(["cat", "/srv/index.html"]);
    expect(image.Config.ExposedPorts).toHaveProperty(["9000/tcp"]);
  });

  it("verify machines start the image's own command with runtime env", async () => {
    const options: DockerOptions = {
      source: FIXTURE_IMAGE,
      changes: { cmd: "echo started with $MODE > /tmp/boot.log; exec sleep infinity" },
    };
    const artifact = await withMachine(options, (machine, t) => driver.capture(t.ctx, machine, { labels: {}, tags: [] }, options));
    artifacts.push(artifact);
    await using test = createTestContext();
    await using fresh = await driver.launchArtifact(test.ctx, artifact, { env: { MODE: "staging" } }, options);
    await expect.poll(async () => (await fresh.exec("cat /tmp/boot.log")).stdout).toBe("started with staging\n");
    expect(await listDockerResources(test.runId)).toHaveLength(1);
  });
});

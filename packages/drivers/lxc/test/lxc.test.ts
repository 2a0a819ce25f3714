import { execFile } from "node:child_process";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import type { KilnEvent } from "@kiln/core";
import { BuildRun, loadProject } from "@kiln/core/engine";
import ansible from "@kiln/provisioner-ansible";
import shell from "@kiln/provisioner-shell";
import { createTestContext, execOk, testPluginInit } from "@kiln/test-suite";
import lxc, { type LxcMachine, type LxcOptions } from "../src/index.js";
import { listLxcResources } from "../src/testing.js";
import { SYSTEM_SOURCE } from "./fixture.js";

const run = promisify(execFile);
const EXAMPLE = resolve(import.meta.dirname, "../../../../examples/lxc");
let dir: string;
const savedStateDir = process.env.KILN_STATE_DIR;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "kiln-lxc-test-"));
  // The driver's artefact store of this file's own, so bakes here never mix with a person's.
  process.env.KILN_STATE_DIR = join(dir, "state");
});
afterAll(async () => {
  if (savedStateDir === undefined) delete process.env.KILN_STATE_DIR;
  else process.env.KILN_STATE_DIR = savedStateDir;
  await rm(dir, { recursive: true, force: true });
});

const driver = () => lxc(testPluginInit("driver", "lxc", { cwd: dir, stateDir: join(dir, "state", "driver-lxc") }));

async function options(raw: Record<string, unknown>): Promise<LxcOptions> {
  const result = await driver().schema["~standard"].validate(raw);
  if (result.issues) throw new Error(result.issues.map((issue) => issue.message).join("; "));
  return result.value;
}

async function launch(raw: Record<string, unknown>) {
  const test = createTestContext({ cwd: dir });
  const opts = await options(raw);
  const machine = await driver().launch(test.ctx, await driver().resolveSource(test.ctx, opts), opts);
  return { test, machine };
}

describe("lxc driver", () => {
  it("bakes examples/lxc: shell and Ansible (lxc connection), verified from a new container booted by systemd with nginx enabled", async () => {
    await cp(EXAMPLE, join(dir, "example"), { recursive: true, filter: (path) => !path.includes("node_modules") });
    const project = await loadProject(join(dir, "example", "kiln.yaml"), {
      plugins: { registry: { drivers: { lxc }, provisioners: { shell, ansible } } },
    });
    const events: KilnEvent[] = [];
    const result = await new BuildRun({ project, kilnVersion: "test", onEvent: (event) => events.push(event) }).run();
    expect(result.records[0]?.error).toBeUndefined();
    const lines = events.flatMap((event) => (event.type === "output" ? [event.line] : []));
    expect(lines).toContain("changed   default | web : install nginx");
    expect(events.filter((event) => event.type === "verify.check").map((event) => (event as { ok?: boolean }).ok)).toEqual([
      true,
      true,
      true,
    ]);

    // The artefact: a rootfs tarball and config as Packer's LXC builder writes them, and LXD/Incus metadata with provenance.
    const artifact = result.records[0]?.artifact;
    expect(artifact?.files?.map((file) => file.format)).toEqual(["tar", "lxc-config", "lxd-metadata"]);
    const metadataTar = artifact?.files?.[2]?.path ?? "";
    expect((await run("tar", ["-tf", metadataTar])).stdout.split("\n").filter(Boolean).sort()).toEqual([
      "metadata.yaml",
      "templates/",
      "templates/hostname.tpl",
    ]);
    const metadata = parse((await run("tar", ["-xOf", metadataTar, "metadata.yaml"])).stdout);
    expect(metadata).toMatchObject({
      architecture: "x86_64",
      properties: { "dev.kiln.image": "web", "dev.kiln.key": artifact?.labels["dev.kiln.key"] },
    });
    const rootfs = artifact?.files?.[0]?.path ?? "";
    const listing = (await run("tar", ["-tf", rootfs], { maxBuffer: 256 << 20 })).stdout;
    expect(listing).toMatch(/^\.\/srv\/www\/index\.html$/m);
    // The build's resolver was lent, not baked.
    expect((await run("tar", ["-xOf", rootfs, "./etc/resolv.conf"]).catch(() => ({ stdout: "" }))).stdout).not.toMatch(
      /nameserver 10\.0\.3\.1/,
    );
    expect(await listLxcResources(result.runId)).toEqual([]);
    if (artifact) await driver().remove(artifact);
  });

  it("boots without a network (network: none): only loopback, systemd up", async () => {
    const { test, machine } = await launch({ source: SYSTEM_SOURCE, network: "none" });
    await using _ = test;
    await using __ = machine;
    expect((await execOk(machine, "ls /sys/class/net")).trim()).toBe("lo");
    expect((await execOk(machine, "cat /proc/1/comm")).trim()).toBe("systemd");
  });

  it("reaches the mirror from a container on the bridge (DNS through lxcbr0, Docker's FORWARD DROP opened)", async () => {
    const { test, machine } = await launch({ source: SYSTEM_SOURCE });
    await using _ = test;
    await using __ = machine;
    const update = await machine.exec("apt-get update 2>&1", { user: "root" });
    expect(update.exitCode).toBe(0);
    // apt-get update exits 0 even when every fetch fails: its output says whether it worked.
    expect(update.stdout).not.toMatch(/^(Err|E):/m);
    expect(update.stdout).toMatch(/^(Get|Hit):/m);
  });

  it("after a restart left lxcbr0 without its dnsmasq: preflight says so, and setup_network brings DNS back", async () => {
    // What a restarted machine keeps: the bridge and lxc-net's files under /run, but no dnsmasq process.
    const pid = (await readFile("/run/lxc/dnsmasq.pid", "utf8")).trim();
    process.kill(Number(pid), "SIGKILL");
    // Gone, or a zombie (state Z) where nothing reaps it.
    await expect.poll(() => readFile(`/proc/${pid}/stat`, "utf8").catch(() => "gone")).toMatch(/^gone$|^\d+ \(dnsmasq\) Z/);
    const problems = await driver().preflight?.(await options({ source: SYSTEM_SOURCE }));
    expect(problems?.map((problem) => problem.message)).toEqual([
      "the bridge lxcbr0 exists but lxc-net's dnsmasq is not running, so containers on it cannot resolve names",
    ]);
    const { test, machine } = await launch({ source: SYSTEM_SOURCE, setup_network: true });
    await using _ = test;
    await using __ = machine;
    expect(await driver().preflight?.(await options({ source: SYSTEM_SOURCE }))).toEqual([]);
    const sources = await readFile("/etc/apt/sources.list.d/debian.sources", "utf8");
    const mirror = new URL(/^URIs:\s*(\S+)/m.exec(sources)?.[1] ?? "http://deb.debian.org/debian").hostname;
    const lookup = await machine.exec(`getent hosts ${mirror}`, { user: "root" });
    expect(lookup.exitCode, lookup.stderr).toBe(0);
  });

  it("says what stops a bridge from working, with the commands that fix it, before anything is created", async () => {
    const problems = await driver().preflight?.(await options({ source: SYSTEM_SOURCE, bridge: "kilnnobr0" }));
    expect(problems).toContainEqual({
      message: "the bridge kilnnobr0 does not exist, so containers on it cannot start",
      hint: "create the bridge, or use network: none",
      path: ["network"],
    });
    expect(await driver().preflight?.(await options({ source: SYSTEM_SOURCE }))).toEqual([]);
  });

  it("asks for host_access before changing the host's network, writing elsewhere than /var/lib/lxc, or raw config", async () => {
    expect(driver().hostAccess?.(await options({ source: SYSTEM_SOURCE }))).toEqual([]);
    const wide = await options({
      source: SYSTEM_SOURCE,
      setup_network: true,
      lxcpath: "/srv/lxc",
      config: ["lxc.mount.entry = /etc etc none bind"],
    });
    expect(
      driver()
        .hostAccess?.(wide)
        .map((access) => access.path.join(".")),
    ).toEqual(["config", "setup_network", "lxcpath"]);
  });

  it("refuses a tree without an init, naming the package to include", async () => {
    const tarball = join(dir, "no-init.tar");
    await writeFile(join(dir, "hello"), "hi\n");
    await run("tar", ["-cf", tarball, "-C", dir, "hello"]);
    const test = createTestContext({ cwd: dir });
    await using _ = test;
    const opts = await options({ source: { tarball: "no-init.tar" }, network: "none" });
    const error = await driver()
      .launch(test.ctx, await driver().resolveSource(test.ctx, opts), opts)
      .catch((thrown: Error) => thrown);
    expect((error as Error).message).toBe("the root file system of conformance has no /sbin/init, so it cannot boot as a system container");
    await test.cleanup();
    expect(await listLxcResources(test.runId)).toEqual([]);
  });

  it("starts from an existing stopped container (a copy of its tree), and refuses a running one", async () => {
    // The source container: another container's tree, made by hand as a person's would be.
    const source = `kiln-test-source-${Date.now()}`;
    const sourceDir = join("/var/lib/lxc", source);
    const { test, machine } = await launch({ source: SYSTEM_SOURCE, network: "none" });
    await using _ = test;
    await execOk(machine, "echo from-source > /etc/source-marker");
    await (machine as LxcMachine).stop();
    await run("cp", ["-a", join("/var/lib/lxc", machine.id), sourceDir]);
    await run("sed", [
      "-i",
      `s#/var/lib/lxc/${machine.id}/#${sourceDir}/#; s#^lxc.uts.name = .*#lxc.uts.name = source#`,
      join(sourceDir, "config"),
    ]);
    await machine[Symbol.asyncDispose]();
    try {
      const cloned = await launch({ source: { container: source }, network: "none" });
      await using __ = cloned.test;
      await using ___ = cloned.machine;
      expect(await execOk(cloned.machine, "cat /etc/source-marker")).toBe("from-source\n");
      await run("lxc-start", ["-n", source, "-d"]);
      const error = await launch({ source: { container: source }, network: "none" }).catch((thrown: Error) => thrown);
      expect((error as Error).message).toBe(`container ${source} is running: a source must be stopped to be copied consistently`);
    } finally {
      await run("lxc-stop", ["-k", "-n", source]).catch(() => undefined);
      await run("lxc-destroy", ["-n", source]);
    }
  });

  it("builds an lxc-templates source once (the debian template, with the host's mirror) and boots it", { timeout: 600_000 }, async () => {
    const { test, machine } = await launch({ source: { template: { release: "bookworm", packages: ["python3"] } }, network: "none" });
    await using _ = test;
    await using __ = machine;
    expect((await execOk(machine, "cat /etc/debian_version")).trim()).toMatch(/^12\./);
    expect((await machine.exec("command -v python3")).exitCode).toBe(0);
    const sources = await readFile("/etc/apt/sources.list.d/debian.sources", "utf8").catch(() => "");
    const mirror = /^URIs:\s*(\S+)/m.exec(sources)?.[1];
    if (mirror) expect(await execOk(machine, "cat /etc/apt/sources.list")).toContain(mirror.replace(/\/$/, ""));
  });
});

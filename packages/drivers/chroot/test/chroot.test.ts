import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LABELS, type Driver } from "@kiln/core";
import { createTestContext, testPluginInit } from "@kiln/test-suite";
import chroot, { type ChrootOptions } from "../src/index.js";

const options: ChrootOptions = { source: { debootstrap: { suite: "bookworm", variant: "minbase", include: ["python3"] } } };
let driver: Driver<ChrootOptions>;
let state: string;

beforeAll(async () => {
  state = await mkdtemp(join(tmpdir(), "kiln-chroot-test-"));
  driver = chroot(testPluginInit("driver", "chroot", { stateDir: state }));
  // Builds (or finds) the tree under the long hook timeout.
  await using test = createTestContext();
  await driver.resolveSource(test.ctx, options);
}, 600_000);
afterAll(() => rm(state, { recursive: true, force: true }));

async function launched(test: ReturnType<typeof createTestContext>) {
  return driver.launch(test.ctx, await driver.resolveSource(test.ctx, options), options);
}

const hostProcesses = (prefix: string) =>
  execFileSync(
    "/bin/sh",
    ["-c", `for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done | grep -c '^${prefix}' || true`],
    { encoding: "utf8" },
  ).trim();

describe("chroot driver", () => {
  it("keeps an upload through a symlink of the image inside the tree, never on the host", async () => {
    await using test = createTestContext();
    await using machine = await launched(test);
    const probe = `kiln-probe-${test.runId}`;
    await machine.exec("ln -s /etc /srv/escape");
    await machine.upload(Readable.from([Buffer.from("inside")]), `/srv/escape/${probe}`);
    expect((await machine.exec(`cat /etc/${probe}`)).stdout).toBe("inside");
    expect(existsSync(`/etc/${probe}`)).toBe(false);
  });

  it("stops what a provisioner left running when the machine goes", async () => {
    const test = createTestContext();
    const machine = await launched(test);
    await machine.exec("(nohup sleep 4321 >/dev/null 2>&1 &)");
    expect(hostProcesses("sleep 4321")).toBe("1");
    await machine[Symbol.asyncDispose]();
    await test.cleanup();
    expect(hostProcesses("sleep 4321")).toBe("0");
  });

  it("resolves names with the host's resolver while baking, and captures the image's own resolv.conf", async () => {
    await using test = createTestContext();
    const capture = async (machine: Awaited<ReturnType<typeof launched>>) => {
      const artifact = await driver.capture(test.ctx, machine, { labels: { [LABELS.build]: test.runId }, tags: [] }, options);
      test.ctx.defer(() => driver.remove(artifact, options));
      await machine[Symbol.asyncDispose]();
      return artifact;
    };
    const resolvConfOf = (artifact: { files?: { path: string }[] }) =>
      execFileSync("tar", ["-xOf", artifact.files?.[0]?.path as string, "./etc/resolv.conf"], { encoding: "utf8" });
    // An image whose resolver a provisioner set: that file is the image's and is kept.
    const parentMachine = await launched(test);
    await parentMachine.exec("echo 'nameserver 192.0.2.53 # the image s own' > /etc/resolv.conf");
    const parent = await capture(parentMachine);
    expect(resolvConfOf(parent)).toBe("nameserver 192.0.2.53 # the image s own\n");
    // Built on it: the host's resolver while provisioning, the image's own in what is captured.
    await using child = createTestContext({ parent });
    const childMachine = await driver.launch(child.ctx, await driver.resolveSource(child.ctx, options), options);
    expect((await childMachine.exec("cat /etc/resolv.conf")).stdout).toBe(await readFile("/etc/resolv.conf", "utf8"));
    const captured = await capture(childMachine);
    expect(resolvConfOf(captured)).toBe("nameserver 192.0.2.53 # the image s own\n");
    expect(captured.files?.[0]).toMatchObject({ format: "tar", sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
  });

  it("kiln validate names each missing host tool with its install command", async () => {
    const saved = process.env.PATH;
    process.env.PATH = await mkdtemp(join(tmpdir(), "kiln-empty-path-"));
    try {
      const problems = (await driver.preflight?.(options)) ?? [];
      expect(problems.map((problem) => `${problem.message} — ${problem.hint}`)).toEqual([
        "chroot not found on this host — install it: apt-get install -y coreutils",
        "tar not found on this host — install it: apt-get install -y tar",
        "mount not found on this host — install it: apt-get install -y mount",
      ]);
    } finally {
      await rm(process.env.PATH, { recursive: true, force: true });
      process.env.PATH = saved;
    }
  });
});

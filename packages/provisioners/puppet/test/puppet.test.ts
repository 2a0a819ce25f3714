import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KilnError, type Machine } from "@kiln/core";
import docker from "@kiln/driver-docker";
import { fixtureOptions, launchFixture } from "@kiln/driver-docker/testing";
import { createTestContext, execOk, testPluginInit, type TestContext } from "@kiln/test-suite";
import puppet, { type PuppetOptions } from "../src/index.js";
import { ensurePuppetImage, puppetDockerOptions } from "./fixtures.js";

const provisioner = puppet(testPluginInit("provisioner", "puppet"));
let dir: string;

beforeAll(async () => {
  await Promise.all([ensurePuppetImage(), fixtureOptions()]); // both built on first use, under the long hook timeout
  dir = await mkdtemp(join(tmpdir(), "kiln-puppet-it-"));
  await writeFile(join(dir, "ok.pp"), "file { '/etc/kiln-ok': content => \"ok\\n\" }\n");
  await writeFile(join(dir, "failing.pp"), "exec { '/bin/false': }\n");
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** A fresh container with puppet (the debootstrap source the conformance suite uses). */
async function launchPuppet(test: TestContext): Promise<Machine> {
  const driver = docker(testPluginInit("driver", "docker", { cwd: dir }));
  const options = (await driver.schema["~standard"].validate(await puppetDockerOptions())) as { value: unknown };
  return driver.launch(test.ctx, await driver.resolveSource(test.ctx, options.value as never), options.value as never);
}

const options = async (input: unknown): Promise<PuppetOptions> => {
  const result = await provisioner.schema["~standard"].validate(input);
  if (result.issues) throw new Error(`invalid options: ${JSON.stringify(result.issues)}`);
  return result.value;
};

const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (thrown: unknown) => thrown as KilnError,
  );

/** The machine, except that removing files fails: what a removal of the staging directory that goes wrong looks like. */
function failingRemoval(machine: Machine): Machine {
  return new Proxy(machine, {
    get(target, key, receiver) {
      if (key !== "exec") return Reflect.get(target, key, receiver);
      return async (cmd: string | string[], opts?: Parameters<Machine["exec"]>[1]) =>
        Array.isArray(cmd) && cmd[0] === "rm" ? { exitCode: 1, stdout: "", stderr: "rm: Device or resource busy" } : target.exec(cmd, opts);
    },
  });
}

describe("puppet provisioner on a real container", () => {
  it("says puppet is missing and how to get it, without install", async () => {
    await using test = createTestContext({ cwd: dir });
    await using machine = await launchFixture(test.ctx);
    const error = await failure(provisioner.run(test.ctx, machine, await options({ manifest_file: "ok.pp" })));
    expect(error).toBeInstanceOf(KilnError);
    expect(error?.code).toBe("E_PROVISION");
    expect(error?.message).toMatch(/^puppet: puppet not found on machine \S+ on root's PATH or in \/opt\/puppetlabs\/bin$/);
    expect(error?.hint).toMatch(/install: true.*puppet_bin_dir/);
    const inBinDir = await failure(
      provisioner.run(test.ctx, machine, await options({ manifest_file: "ok.pp", puppet_bin_dir: "/opt/nowhere" })),
    );
    expect(inBinDir?.message).toMatch(/puppet not found on machine \S+ in \/opt\/nowhere \(puppet_bin_dir\)/);
  });

  it("fails install clearly when apt-get update cannot fetch (it exits 0 all the same)", async () => {
    await using test = createTestContext({ cwd: dir });
    await using machine = await launchFixture(test.ctx);
    await execOk(machine, "echo 'deb http://127.0.0.1:9/debian bookworm main' > /etc/apt/sources.list && rm -rf /etc/apt/sources.list.d/*");
    const error = await failure(provisioner.run(test.ctx, machine, await options({ manifest_file: "ok.pp", install: true })));
    expect(error?.code).toBe("E_PROVISION");
    expect(error?.message).toMatch(/^puppet: apt-get update failed on machine \S+:\n {2}(Err|E):.*127\.0\.0\.1/);
    expect(error?.hint).toMatch(/apt sources/);
  });

  it("uses puppet_bin_dir, streams output without Facter's noise, and removes the staging directory after a failure too", async () => {
    await using test = createTestContext({ cwd: dir });
    await using machine = await launchPuppet(test);
    await provisioner.run(test.ctx, machine, await options({ manifest_file: "ok.pp", puppet_bin_dir: "/usr/bin" }));
    expect(await execOk(machine, "cat /etc/kiln-ok")).toBe("ok\n");
    expect(test.output()).toEqual(
      expect.arrayContaining([expect.stringMatching(/^Notice: \/Stage\[main\]\/Main\/File\[\/etc\/kiln-ok\]\/ensure: defined content/)]),
    );
    expect(test.output().some((line) => line.includes("/proc/1/environ"))).toBe(false);
    const error = await failure(provisioner.run(test.ctx, machine, await options({ manifest_file: "failing.pp" })));
    expect(error?.message).toMatch(/exited with code 4 \(some resources failed\)/);
    expect(await execOk(machine, "ls -A /tmp")).toBe("");
  });

  it("keeps files it did not stage in an existing staging_directory, and can keep the staging directory on request", async () => {
    await using test = createTestContext({ cwd: dir });
    await using machine = await launchPuppet(test);
    await execOk(machine, "mkdir -p /srv/stage/manifests && echo mine > /srv/stage/keep && echo stale > /srv/stage/manifests/stale.pp");
    await provisioner.run(test.ctx, machine, await options({ manifest_file: "ok.pp", staging_directory: "/srv/stage/" }));
    expect(await execOk(machine, "ls -A /srv/stage")).toBe("keep\n");
    await provisioner.run(test.ctx, machine, await options({ manifest_file: "ok.pp", clean_staging_directory: false }));
    expect(await execOk(machine, "ls /tmp/kiln-puppet-*/manifests")).toBe("ok.pp\n");
  });

  it("fails when the staging directory cannot be removed, but never hides the step's own error with that", async () => {
    await using test = createTestContext({ cwd: dir });
    await using machine = await launchPuppet(test);
    const removalOnly = await failure(provisioner.run(test.ctx, failingRemoval(machine), await options({ manifest_file: "ok.pp" })));
    expect(removalOnly?.message).toMatch(
      /^puppet: cannot remove the staging directory \/tmp\/kiln-puppet-\w+: rm: Device or resource busy$/,
    );
    expect(removalOnly?.hint).toMatch(/captured in the image/);
    const both = await failure(provisioner.run(test.ctx, failingRemoval(machine), await options({ manifest_file: "failing.pp" })));
    expect(both?.message).toMatch(/exited with code 4/);
    expect(test.events).toContainEqual(expect.objectContaining({ message: expect.stringMatching(/cannot remove the staging directory/) }));
  });
});

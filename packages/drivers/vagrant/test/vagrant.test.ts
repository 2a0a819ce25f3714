import { execFile } from "node:child_process";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KilnEvent } from "@kiln/core";
import { BuildRun, loadProject } from "@kiln/core/engine";
import file from "@kiln/provisioner-file";
import shell from "@kiln/provisioner-shell";
import { createTestContext, testPluginInit } from "@kiln/test-suite";
import vagrant, { buildBaseBox, type VagrantOptions } from "../src/index.js";
import { listVagrantResources } from "../src/testing.js";
import { BASE_SOURCE } from "./fixture.js";

const run = promisify(execFile);
const EXAMPLE = resolve(import.meta.dirname, "../../../../examples/vagrant");
let dir: string;
const savedStateDir = process.env.KILN_STATE_DIR;
/** Three VMs boot under software emulation (build, parent verify, child verify) beside the conformance file's. */
const EXAMPLE_BAKE_MS = 22 * 60_000;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "kiln-vagrant-test-"));
  // The driver's artefact store and catalogs of this file's own, so bakes here never mix with a person's.
  process.env.KILN_STATE_DIR = join(dir, "state");
});
afterAll(async () => {
  if (savedStateDir === undefined) delete process.env.KILN_STATE_DIR;
  else process.env.KILN_STATE_DIR = savedStateDir;
  await rm(dir, { recursive: true, force: true });
});

const driver = () => vagrant(testPluginInit("driver", "vagrant", { cwd: dir, stateDir: join(dir, "state", "driver-vagrant") }));

async function options(raw: Record<string, unknown>): Promise<VagrantOptions> {
  const result = await driver().schema["~standard"].validate(raw);
  if (result.issues) throw new Error(result.issues.map((issue) => issue.message).join("; "));
  return result.value;
}

describe("vagrant driver", () => {
  it("bakes examples/vagrant: a base box from scratch, then a web box on it, verified from a fresh VM; a catalog per tag", {
    timeout: EXAMPLE_BAKE_MS + 180_000,
  }, async () => {
    await cp(EXAMPLE, join(dir, "example"), { recursive: true, filter: (path) => !path.includes("node_modules") });
    const project = await loadProject(join(dir, "example", "kiln.yaml"), {
      plugins: { registry: { drivers: { vagrant }, provisioners: { shell, file } } },
    });
    const events: KilnEvent[] = [];
    // The bake gets its own deadline, before the test's: a slow run then unwinds and removes its VMs instead of being abandoned by
    // vitest with its verify VM still running.
    const signal = AbortSignal.timeout(EXAMPLE_BAKE_MS);
    const result = await new BuildRun({ project, kilnVersion: "test", signal, onEvent: (event) => events.push(event) }).run();
    expect(result.records.map((record) => [record.image, record.error?.message])).toEqual([
      ["base", undefined],
      ["web", undefined],
    ]);
    expect(events.filter((event) => event.type === "verify.check").map((event) => (event as { ok?: boolean }).ok)).toEqual([
      true,
      true,
      true,
    ]);

    // The web box: a libvirt box Vagrant can add (metadata.json, a qcow2 disk, the kernel it boots) with Kiln's provenance.
    const web = result.records[1]?.artifact;
    const box = web?.files?.find((item) => item.format === "box")?.path ?? "";
    const listing = (await run("tar", ["-tf", box])).stdout.split("\n").filter(Boolean).sort();
    expect(listing).toEqual(["Vagrantfile", "box.img", "initrd.img", "kiln.json", "metadata.json", "vmlinuz"]);
    expect(JSON.parse((await run("tar", ["-xOf", box, "metadata.json"])).stdout)).toMatchObject({ provider: "libvirt", format: "qcow2" });
    const provenance = JSON.parse((await run("tar", ["-xOf", box, "kiln.json"])).stdout);
    expect(provenance).toMatchObject({ image: "web", labels: { "dev.kiln.image": "web", "dev.kiln.key": web?.labels["dev.kiln.key"] } });

    // A catalog per tagged box name, as `vagrant box add <catalog>` reads it: the version points at the box with its checksum.
    const catalog = JSON.parse(await readFile(join(dir, "state", "driver-vagrant", "catalog", "kiln-example", "web", "box.json"), "utf8"));
    expect(catalog).toEqual({
      name: "kiln-example/web",
      versions: [
        {
          version: "1.0.0",
          providers: [{ name: "libvirt", url: `file://${box}`, checksum_type: "sha256", checksum: web?.files?.[0]?.sha256 }],
        },
      ],
    });
    await run("vagrant", ["box", "add", join(dir, "state", "driver-vagrant", "catalog", "kiln-example", "web", "box.json")], {
      cwd: dir,
    });
    expect((await run("vagrant", ["box", "list"], { cwd: dir })).stdout).toMatch(/^kiln-example\/web\s+\(libvirt, 1\.0\.0\)$/m);
    await run("vagrant", ["box", "remove", "--force", "kiln-example/web"], { cwd: dir });

    expect(await listVagrantResources(result.runId)).toEqual([]);
    for (const record of result.records) if (record.artifact) await driver().remove(record.artifact);
  });

  it("resolves an installed box by name and version, and a project's .box file, each with a digest for the bake key", async () => {
    const cache = join(process.env.KILN_CACHE_DIR ?? join(homedir(), ".cache", "kiln"), "driver-vagrant", "base-boxes");
    const base = await buildBaseBox(BASE_SOURCE.debootstrap, cache);
    await cp(base.box, join(dir, "local.box"));
    const test = createTestContext({ cwd: dir });
    const fromFile = await driver().resolveSource(test.ctx, await options({ source: { box_file: "./local.box" } }));
    expect(fromFile).toMatchObject({ description: "./local.box", details: { box: join(dir, "local.box") } });
    expect(fromFile.digest).toMatch(/^sha256:[0-9a-f]{64}$/);

    const named = await options({ source: { box: { name: "kiln-test/named" } } });
    expect((await driver().preflight?.(named))?.map((problem) => problem.message)).toContain(
      `the box kiln-test/named is not installed in ${process.env.VAGRANT_HOME}`,
    );
    const metadata = {
      name: "kiln-test/named",
      versions: [{ version: "1.2.0", providers: [{ name: "libvirt", url: `file://${join(dir, "local.box")}` }] }],
    };
    await writeFile(join(dir, "named.json"), JSON.stringify(metadata));
    await run("vagrant", ["box", "add", join(dir, "named.json")], { cwd: dir });
    try {
      expect(await driver().preflight?.(named)).toEqual([]);
      const resolved = await driver().resolveSource(test.ctx, named);
      expect(resolved).toMatchObject({ id: "box:kiln-test/named@1.2.0", details: { boxName: "kiln-test/named", boxVersion: "1.2.0" } });
    } finally {
      await run("vagrant", ["box", "remove", "--force", "--all", "kiln-test/named"], { cwd: dir });
    }
  });

  it("says when KVM cannot run guests here and libvirt_driver: kvm was asked for", async () => {
    const cpuFlags = await readFile("/proc/cpuinfo", "utf8");
    const kvm = await driver().preflight?.(await options({ source: BASE_SOURCE, libvirt_driver: "kvm" }));
    if (/\b(vmx|svm)\b/.test(cpuFlags)) expect(kvm).toEqual([]);
    else
      expect(kvm).toContainEqual({
        message: "KVM cannot run guests on this host (no /dev/kvm, or no vmx/svm CPU flag)",
        hint: "use libvirt_driver: qemu (software emulation) or auto",
        path: ["libvirt_driver"],
      });
  });
});

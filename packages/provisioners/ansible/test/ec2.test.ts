import { cp, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KilnEvent } from "@kiln/core";
import { BuildRun, loadProject } from "@kiln/core/engine";
import ec2 from "@kiln/driver-ec2";
import { type Emulator, resourcesTagged, seededImageOptions, startEmulator } from "@kiln/ec2-emulator";
import ansible from "../src/index.js";

const EXAMPLE = resolve(import.meta.dirname, "../../../../examples/ansible");
let emulator: Emulator;
let dir: string;

beforeAll(async () => {
  emulator = await startEmulator({ transitionDelayMs: 100 });
  dir = await mkdtemp(join(tmpdir(), "kiln-ansible-ec2-"));
  await cp(join(EXAMPLE, "ansible"), join(dir, "ansible"), { recursive: true });
});
afterAll(async () => {
  await emulator?.stop();
  await rm(dir, { recursive: true, force: true });
});

// Over SSH to an instance of the EC2 emulator, logged in as `admin` with the pinned host key, becoming root with sudo.
describe("ansible on EC2 (the project's emulator)", () => {
  it("bakes an AMI with nginx configured by the role, and verify proves it over http from a new instance", {
    timeout: 300_000,
  }, async () => {
    const image = {
      driver: "ec2",
      ...seededImageOptions(emulator.endpoint),
      ami_name: "kiln-ansible-web-{date}",
      provision: [{ ansible: { playbook_file: "ansible/site.yml", groups: ["webservers"], extra_vars: { site_version: "2.0.0" } } }],
      verify: {
        // Nothing starts nginx in an AMI without an init system: the boot script does, as a deployment's would.
        runtime: { boot_script: "nginx" },
        checks: [{ http: { port: 80, body_contains: "Baked by Kiln with Ansible: site 2.0.0" } }, { package: "nginx" }],
      },
    };
    await writeFile(join(dir, "kiln.yaml"), JSON.stringify({ images: { web: image } }));
    const project = await loadProject(join(dir, "kiln.yaml"), { plugins: { registry: { drivers: { ec2 }, provisioners: { ansible } } } });
    const events: KilnEvent[] = [];
    const result = await new BuildRun({ project, kilnVersion: "test", onEvent: (event) => events.push(event) }).run();
    expect(result.records[0]?.error).toBeUndefined();
    const lines = events.flatMap((event) => (event.type === "output" ? [event.line] : []));
    expect(lines).toContain("changed   default | nginx : install nginx");
    const artifact = result.records[0]?.artifact;
    if (artifact) await ec2({ cwd: dir, stateDir: dir, cacheDir: dir, log: console }).remove(artifact, image as never);
    // Every instance, key pair and security group of the run is gone; the AMI was removed just now.
    expect(resourcesTagged(emulator.resources(), "dev.kiln.build", result.runId)).toEqual([]);
  });
});

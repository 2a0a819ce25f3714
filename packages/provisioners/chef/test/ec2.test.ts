import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BuildRun, loadProject } from "@kiln/core/engine";
import ec2 from "@kiln/driver-ec2";
import { type Emulator, resourcesTagged, seededImageOptions, startEmulator } from "@kiln/ec2-emulator";
import chef from "../src/index.js";
import { FULL_OPTIONS, PROJECT, STANDIN_RESULT } from "./standin.js";
import { writeFiles } from "@kiln/test-suite";

// chef-solo here is Kiln's test STAND-IN (test/fixtures/chef-solo-standin.py), installed by install_command: no Chef or Cinc
// package can be installed on the machine that runs these tests.
let emulator: Emulator;
let dir: string;

beforeAll(async () => {
  emulator = await startEmulator({ transitionDelayMs: 100 });
  dir = await mkdtemp(join(tmpdir(), "kiln-chef-ec2-"));
  await writeFiles(dir, PROJECT);
});
afterAll(async () => {
  await emulator?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("chef on EC2 (the project's emulator), with the stand-in chef-solo", () => {
  it("stages the cookbooks over SSH as admin with sudo, runs the stand-in, and a new instance of the AMI shows its change", {
    timeout: 300_000,
  }, async () => {
    const image = {
      driver: "ec2",
      ...seededImageOptions(emulator.endpoint),
      ami_name: "kiln-chef-{date}",
      provision: [{ chef: { ...FULL_OPTIONS, json: { app: { greeting: "hello from EC2" } } } }],
      verify: {
        checks: [
          { file: { path: STANDIN_RESULT, contains: "hello from EC2" } },
          // Nothing staged reaches the image.
          { command: { run: "ls -A /tmp | grep -c '^kiln-' || true", stdout_contains: "0" } },
        ],
      },
    };
    await writeFile(join(dir, "kiln.yaml"), JSON.stringify({ images: { app: image } }));
    const project = await loadProject(join(dir, "kiln.yaml"), { plugins: { registry: { drivers: { ec2 }, provisioners: { chef } } } });
    const result = await new BuildRun({ project, kilnVersion: "test" }).run();
    expect(result.records[0]?.error).toBeUndefined();
    const artifact = result.records[0]?.artifact;
    if (artifact) await ec2({ cwd: dir, stateDir: dir, cacheDir: dir, log: console }).remove(artifact, image as never);
    expect(resourcesTagged(emulator.resources(), "dev.kiln.build", result.runId)).toEqual([]);
  });
});

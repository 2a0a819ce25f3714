// Over SSH to an instance of the EC2 emulator, logged in as `admin` with sudo: puppet is installed on the machine first.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { KilnEvent } from "@kiln/core";
import { BuildRun, loadProject } from "@kiln/core/engine";
import ec2 from "@kiln/driver-ec2";
import { resourcesTagged, seededImageOptions, startEmulator, type Emulator } from "@kiln/ec2-emulator";
import { testPluginInit, writeFiles } from "@kiln/test-suite";
import puppet from "../src/index.js";
import { WEB_PROJECT } from "./fixtures.js";

const SECRET = "tok-secret-123456";
let emulator: Emulator;
let dir: string;
beforeAll(async () => {
  emulator = await startEmulator({ transitionDelayMs: 100 });
  dir = await mkdtemp(join(tmpdir(), "kiln-puppet-ec2-"));
  await writeFiles(dir, WEB_PROJECT);
});
afterAll(async () => {
  await emulator?.stop();
  await rm(dir, { recursive: true, force: true });
});

it("bakes the nginx image over SSH (admin + sudo) on the EC2 emulator, installing puppet, verified over HTTP", async () => {
  const image = {
    driver: "ec2",
    ...seededImageOptions(emulator.endpoint),
    ami_name: "kiln-puppet-web-{date}",
    provision: [
      {
        puppet: {
          manifest_file: "puppet/manifests/site.pp",
          module_paths: ["puppet/modules"],
          hiera_config_path: "puppet/hiera.yaml",
          hiera_data_path: "puppet/data",
          facter: { role: "web", api_token: "{{ token }}" },
          install: true,
        },
      },
    ],
    verify: {
      runtime: { boot_script: "nginx" },
      checks: [
        { http: { port: 8080, body_contains: "Baked by Puppet" } },
        { command: { run: "ls /tmp | grep -c '^kiln-puppet-' || true", stdout_contains: "0" } },
      ],
    },
  };
  const variables = { token: { sensitive: true, default: SECRET } };
  await writeFile(join(dir, "kiln.yaml"), JSON.stringify({ variables, images: { web: image } }, null, 2));
  const project = await loadProject(join(dir, "kiln.yaml"), { plugins: { registry: { drivers: { ec2 }, provisioners: { puppet } } } });
  const events: KilnEvent[] = [];
  const result = await new BuildRun({ project, kilnVersion: "test", onEvent: (event) => events.push(event) }).run();
  const artifact = result.records[0]?.artifact;
  if (artifact) await ec2(testPluginInit("driver", "ec2", { cwd: dir })).remove(artifact, image as never);
  expect(result.records[0]?.error).toBeUndefined();
  expect(result.ok).toBe(true);
  expect(JSON.stringify(events)).not.toContain(SECRET);
  expect(resourcesTagged(emulator.resources(), "dev.kiln.build", result.runId)).toEqual([]);
}, 600_000);

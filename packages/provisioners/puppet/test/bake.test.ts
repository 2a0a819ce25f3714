import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KilnError, LABELS, type KilnEvent } from "@kiln/core";
import { BuildRun, loadProject } from "@kiln/core/engine";
import docker from "@kiln/driver-docker";
import { listDockerResources } from "@kiln/driver-docker/testing";
import { testPluginInit, writeFiles } from "@kiln/test-suite";
import puppet from "../src/index.js";
import { ensurePuppetImage, PUPPET_SOURCE, WEB_PROJECT } from "./fixtures.js";

const run = promisify(execFile);
const SECRET = "tok-secret-123456";

let dir: string;
beforeAll(async () => {
  await ensurePuppetImage(); // under the long hook timeout the first time
  dir = await mkdtemp(join(tmpdir(), "kiln-puppet-bake-"));
  await writeFiles(dir, WEB_PROJECT);
  await writeFile(join(dir, "failing.pp"), `exec { "/bin/sh -c 'echo using \${facts['api_token']}; exit 3'": }\n`);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const WEB_STEP = {
  manifest_file: "puppet/manifests/site.pp",
  module_paths: ["puppet/modules"],
  hiera_config_path: "puppet/hiera.yaml",
  hiera_data_path: "puppet/data",
  facter: { role: "web", api_token: "{{ token }}" },
};

const registry = { plugins: { registry: { drivers: { docker }, provisioners: { puppet } } } };

async function writeBakeFile(image: Record<string, unknown>): Promise<string> {
  const variables = { token: { sensitive: true, default: SECRET } };
  const file = join(dir, "kiln.yaml");
  await writeFile(file, JSON.stringify({ variables, images: { web: { driver: "docker", source: PUPPET_SOURCE, ...image } } }, null, 2));
  return file;
}

/**
 * Bakes through the real loader and runner, as `kiln build` does; `inspect` sees the image before it is removed. Everything
 * the bake and the inspection create carries the run's `dev.kiln.build` label, and nothing may be left afterwards.
 */
async function bake(image: Record<string, unknown>, inspect?: (imageId: string, runId: string) => Promise<void>) {
  const project = await loadProject(await writeBakeFile(image), registry);
  const events: KilnEvent[] = [];
  const result = await new BuildRun({ project, kilnVersion: "test", onEvent: (event) => events.push(event) }).run();
  const artifact = result.records[0]?.artifact;
  try {
    if (artifact && inspect) await inspect(artifact.id, result.runId);
  } finally {
    if (artifact) await docker(testPluginInit("driver", "docker", { cwd: dir })).remove(artifact);
  }
  expect(await listDockerResources(result.runId)).toEqual([]);
  return { result, events, text: JSON.stringify(events) };
}

/** Runs a shell command in a throw-away container of the image (labelled with the run, removed when it exits). */
async function inImage(imageId: string, runId: string, command: string): Promise<string> {
  const args = ["run", "--rm", "--label", `${LABELS.build}=${runId}`, "--entrypoint", "/bin/sh", imageId, "-c", command];
  return (await run("docker", args)).stdout;
}

describe("puppet in a bake file", () => {
  it("bakes an nginx image from a module with hiera data and templates, verified over HTTP from a fresh container", async () => {
    const image = {
      provision: [{ puppet: { ...WEB_STEP, timeout: "5m" } }],
      changes: { cmd: ["nginx", "-g", "daemon off;"], expose: [8080] },
      verify: [
        {
          checks: [
            { http: { port: 8080, body_contains: "Baked by Puppet" } },
            { http: { port: 8080, body_contains: "role: web" } },
            { process: "nginx" },
            { package: "nginx" },
            { file: { path: "/etc/nginx/conf.d/kiln-site.conf", contains: "listen 8080 default_server" } },
          ],
        },
      ],
    };
    const { result, events, text } = await bake(image, async (imageId, runId) => {
      // Nothing staged is captured, and Puppet's own state holds no secret.
      expect(await inImage(imageId, runId, "ls -A /tmp")).toBe("");
      expect(await inImage(imageId, runId, `grep -rl '${SECRET}' /tmp /etc /var/lib/puppet /var/cache/puppet /srv || true`)).toBe("");
    });
    expect(result.records[0]?.error).toBeUndefined();
    expect(result.ok).toBe(true);
    const lines = events.flatMap((event) => (event.type === "output" ? [event.line] : []));
    expect(lines).toContain(`Notice: api token has ${SECRET.length} characters`);
    expect(lines.some((line) => line.includes("/Stage[main]/Web/Package[nginx]/ensure: created"))).toBe(true);
    expect(lines.some((line) => line.includes("/proc/1/environ"))).toBe(false);
    expect(text).not.toContain(SECRET);
  });

  it("fails the bake on a failing resource with the resource, the exit code's meaning and redacted output, leaving nothing behind", async () => {
    const { result, text } = await bake({ provision: [{ puppet: { ...WEB_STEP, manifest_file: "failing.pp" } }] });
    expect(result.ok).toBe(false);
    const error = result.records[0]?.error;
    expect(error?.code).toBe("E_PROVISION");
    expect(error?.message).toMatch(/^puppet: puppet apply failing\.pp exited with code 4 \(some resources failed\)\nfailed resources:\n/);
    expect(error?.message).toContain("  /Stage[main]/Main/Exec[/bin/sh -c 'echo using <sensitive>; exit 3']");
    expect(error?.message).toContain("returned 3 instead of one of [0]");
    expect(text).not.toContain(SECRET);
  });

  it("refuses a sensitive variable in extra_arguments and a module path outside the project, at load", async () => {
    const file = await writeBakeFile({
      provision: [{ puppet: { ...WEB_STEP, extra_arguments: ["--certname", "{{ token }}"], module_paths: ["../elsewhere/modules"] } }],
    });
    const error = await loadProject(file, registry).then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(KilnError);
    const problems = (error as KilnError).diagnostics.map((diagnostic) => `${diagnostic.path}: ${diagnostic.message}`).join("\n");
    expect(problems).toMatch(/extra_arguments.*sensitive variable "token" would be written into the puppet apply command line/);
    expect(problems).toMatch(/module_paths.*outside the project/);
    expect(problems).not.toContain(SECRET);
  });
});

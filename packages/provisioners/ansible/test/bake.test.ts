import { execFile, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cp, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KilnEvent } from "@kiln/core";
import { BuildRun, loadProject, planBuild } from "@kiln/core/engine";
import docker from "@kiln/driver-docker";
import { FIXTURE_IMAGE, fixtureOptions, listDockerResources, removeDockerResources } from "@kiln/driver-docker/testing";
import shell from "@kiln/provisioner-shell";
import ansible from "../src/index.js";
import { failingPlaybook } from "./fixtures.js";
import { writeFiles } from "@kiln/test-suite";

const EXAMPLE = resolve(import.meta.dirname, "../../../../examples/ansible");
const registry = { drivers: { docker }, provisioners: { shell, ansible } };
const runs: string[] = [];
let dir: string;

beforeAll(async () => {
  await fixtureOptions();
  dir = await mkdtemp(join(tmpdir(), "kiln-ansible-bake-"));
  // The example's playbook and nginx role, as a team would keep them next to their bake file.
  await cp(join(EXAMPLE, "ansible"), join(dir, "ansible"), { recursive: true });
});
afterAll(async () => {
  for (const runId of runs) await removeDockerResources(runId);
  await rm(dir, { recursive: true, force: true });
});

async function load(bakeFile: unknown, variables: Record<string, string> = {}) {
  await writeFile(join(dir, "kiln.yaml"), JSON.stringify(bakeFile, null, 2));
  return loadProject(join(dir, "kiln.yaml"), {
    plugins: { registry },
    variables: { env: Object.fromEntries(Object.entries(variables).map(([name, value]) => [`KILN_VAR_${name}`, value])) },
  });
}

/** Bakes through the real loader and runner, as `kiln build` does; artefacts are removed after the file. */
async function bake(bakeFile: unknown, variables: Record<string, string> = {}) {
  const project = await load(bakeFile, variables);
  const events: KilnEvent[] = [];
  const result = await new BuildRun({ project, kilnVersion: "test", onEvent: (event) => events.push(event) }).run();
  runs.push(result.runId);
  return { result, events, text: JSON.stringify(events) };
}

const web = (extra: Record<string, unknown> = {}) => ({
  from: "base",
  driver: "docker",
  provision: [{ ansible: { playbook_file: "ansible/site.yml", groups: ["webservers"], ...extra } }],
  changes: { cmd: ["nginx", "-g", "daemon off;"], expose: [80] },
  verify: { checks: [{ http: { port: 80, body_contains: "Baked by Kiln with Ansible" } }] },
});

describe("ansible in a bake file", () => {
  it("configures nginx with a role, verify proves it from a fresh container, and a changed template rebakes that image and its children only", async () => {
    const graph = {
      images: {
        base: { driver: "docker", source: FIXTURE_IMAGE, provision: [{ shell: { inline: ["true"] } }] },
        web: web(),
        "web-debug": { from: "web", driver: "docker", provision: [{ shell: { inline: ["touch /etc/debug"] } }] },
        worker: { from: "base", driver: "docker", provision: [{ shell: { inline: ["touch /etc/worker"] } }] },
      },
    };
    const { result, events } = await bake(graph);
    expect(result.records.map((record) => [record.image, record.error?.message])).toEqual([
      ["base", undefined],
      ["web", undefined],
      ["web-debug", undefined],
      ["worker", undefined],
    ]);
    // One line per task with its status, and the verify http check from a fresh container passed.
    const lines = events.flatMap((event) => (event.type === "output" && event.image === "web" ? [event.line] : []));
    expect(lines).toContain("changed   default | nginx : install nginx");
    expect(lines).toContain("changed   default | nginx : check the nginx configuration");
    expect(events).toContainEqual(
      expect.objectContaining({ type: "log", image: "web", message: expect.stringMatching(/ok=\d+ changed=\d+ failed=0/) }),
    );

    const template = join(dir, "ansible/roles/nginx/templates/index.html.j2");
    await writeFile(template, "<p>Baked by Kiln with Ansible, changed</p>\n");
    const plan = await planBuild({ project: await load(graph) });
    expect(Object.fromEntries(plan.map((entry) => [entry.image, entry.action]))).toEqual({
      base: "cached",
      web: "bake",
      "web-debug": "bake",
      worker: "cached",
    });
    expect(plan.find((entry) => entry.image === "web")?.reasons.join(" ")).toMatch(/provision\[0\] ansible changed/);
    await cp(join(EXAMPLE, "ansible/roles/nginx/templates/index.html.j2"), template);
  });

  it("fails the bake naming the task, host and Ansible's message, and leaves nothing behind", async () => {
    await writeFiles(dir, failingPlaybook);
    const before = await kilnAnsibleDirs();
    const image = {
      driver: "docker",
      source: FIXTURE_IMAGE,
      provision: [{ ansible: { playbook_file: "failing/site.yml", host_alias: "app" } }],
    };
    const { result } = await bake({ images: { app: image } });
    expect(result.ok).toBe(false);
    expect(result.records[0]?.error?.code).toBe("E_PROVISION");
    expect(result.records[0]?.error?.message).toBe(
      'ansible: failing/site.yml failed (ansible-playbook exited with 2)\ntask "check the disk" failed on app: the disk is full',
    );
    expect(await listDockerResources(result.runId)).toEqual([]);
    expect(await kilnAnsibleDirs()).toEqual(before);
  });

  it("--on-error=abort keeps the machine and the inventory, which reaches it with Ansible by hand", async () => {
    await writeFiles(dir, failingPlaybook);
    const image = { driver: "docker", source: FIXTURE_IMAGE, provision: [{ ansible: { playbook_file: "failing/site.yml" } }] };
    const project = await load({ images: { app: image } });
    const events: KilnEvent[] = [];
    const result = await new BuildRun({ project, kilnVersion: "test", onError: "abort", onEvent: (event) => events.push(event) }).run();
    runs.push(result.runId);
    const inventory = /inventory \((\/[^)]+)\)/.exec(result.records[0]?.error?.hint ?? "")?.[1] ?? "";
    try {
      expect(events).toContainEqual(expect.objectContaining({ type: "abort.kept", image: "app" }));
      const ping = await promisify(execFile)("ansible", ["all", "-i", inventory, "-m", "ansible.builtin.ping"], {
        env: { ...process.env, ANSIBLE_NOCOLOR: "1" },
      });
      expect(ping.stdout).toMatch(/default \| SUCCESS/);
    } finally {
      await rm(dirname(inventory), { recursive: true, force: true });
    }
  });

  it("keeps sensitive extra vars out of output, events, command lines, the image and its history", { timeout: 240_000 }, async () => {
    const secret = "s3cr3t-ansible-7f2c9e";
    await writeFiles(dir, {
      "secret/site.yml": `- hosts: all
  gather_facts: false
  tasks:
    # As module arguments, not through environment:, which Ansible puts on the machine's command lines.
    - name: use the token
      ansible.builtin.shell: sha256sum | grep -q ${createHash("sha256").update(secret).digest("hex")} && echo "token checked" > /etc/token-checked && sleep 2
      args: { stdin: "{{ api_token }}", stdin_add_newline: false }
    - name: print it carelessly
      ansible.builtin.debug: { msg: "the token is {{ api_token }}" }
`,
    });
    const image = {
      driver: "docker",
      source: FIXTURE_IMAGE,
      provision: [{ ansible: { playbook_file: "secret/site.yml", extra_vars: { api_token: "{{ token }}" } } }],
      tags: ["kiln-ansible-test/secret:1"],
    };
    const commandLines: string[] = [];
    const sample = setInterval(async () => {
      commandLines.push((await promisify(execFile)("ps", ["-eo", "args"], { maxBuffer: 8 << 20 })).stdout);
    }, 100);
    const { result, text } = await bake({ variables: { token: { sensitive: true } }, images: { app: image } }, { token: secret }).finally(
      () => clearInterval(sample),
    );
    expect(result.records[0]?.error).toBeUndefined();
    expect(text).toContain("ok        default | print it carelessly");
    expect(text).toContain("    the token is <sensitive>");
    expect(commandLines.join("").length).toBeGreaterThan(0);
    const id = result.records[0]?.artifact?.id ?? "";
    const inspect = spawnSync("docker", ["image", "inspect", id], { encoding: "utf8" }).stdout;
    const history = spawnSync("docker", ["history", "--no-trunc", id], { encoding: "utf8" }).stdout;
    // Every file of the image searched for the secret — and for the file the task wrote, so an empty answer is real.
    const search = `grep -rlF -e 'token checked' -e '${secret}' / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev`;
    const files = spawnSync("docker", ["run", "--rm", "--network", "none", id, "/bin/sh", "-c", search], { encoding: "utf8" }).stdout;
    expect(files.trim().split("\n")).toEqual(["/etc/token-checked"]);
    for (const [place, found] of Object.entries({ events: text, inspect, history, "command lines": commandLines.join("") }))
      expect(found.includes(secret) ? found.split("\n").filter((line) => line.includes(secret)) : [], `${place} shows the secret`).toEqual(
        [],
      );
  });
});

/** This host's Ansible work directories (inventory, key, vars files): a bake must remove its own. */
async function kilnAnsibleDirs(): Promise<string[]> {
  return (await readdir(tmpdir())).filter((name) => name.startsWith("kiln-ansible-") && !dir.endsWith(name)).sort();
}

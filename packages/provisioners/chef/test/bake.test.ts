import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KilnEvent } from "@kiln/core";
import { BuildRun, loadProject } from "@kiln/core/engine";
import docker from "@kiln/driver-docker";
import { fixtureOptions, listDockerResources } from "@kiln/driver-docker/testing";
import { testPluginInit, writeFiles } from "@kiln/test-suite";
import chef from "../src/index.js";
import { DATA_BAG_SECRET, FULL_OPTIONS, PROJECT, STANDIN_RESULT, type StandinResult } from "./standin.js";

// chef-solo here is Kiln's test STAND-IN (test/fixtures/chef-solo-standin.py), installed by install_command: no Chef or Cinc
// package can be installed on the machine that runs these tests.
const run = promisify(execFile);
const DB_PASSWORD = "pw-sensitive-778899";
let dir: string;

beforeAll(async () => {
  await fixtureOptions();
  dir = await mkdtemp(join(tmpdir(), "kiln-chef-bake-"));
  await writeFiles(dir, PROJECT);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Bakes one chef step on the fixture image through the real loader and runner, as `kiln build` does. */
async function bake(runList: string[], inspect?: (imageId: string) => Promise<void>) {
  const step = {
    chef: {
      ...FULL_OPTIONS,
      run_list: runList,
      json: { app: { greeting: "{{ greeting }}", db_password: "{{ db_password }}" } },
      timeout: "120s",
    },
  };
  const image = {
    driver: "docker",
    source: (await fixtureOptions()).source,
    provision: [step],
    verify: { checks: [{ file: { path: STANDIN_RESULT, contains: "hello from the bake file" } }] },
  };
  const variables = { db_password: { sensitive: true, default: DB_PASSWORD }, greeting: { default: "hello from the bake file" } };
  await writeFile(join(dir, "kiln.yaml"), JSON.stringify({ variables, images: { app: image } }, null, 2));
  const project = await loadProject(join(dir, "kiln.yaml"), { plugins: { registry: { drivers: { docker }, provisioners: { chef } } } });
  const events: KilnEvent[] = [];
  const result = await new BuildRun({ project, kilnVersion: "test", onEvent: (event) => events.push(event) }).run();
  const artifact = result.records[0]?.artifact;
  try {
    if (artifact) await inspect?.(artifact.id);
  } finally {
    if (artifact) await docker(testPluginInit("driver", "docker", { cwd: dir })).remove(artifact);
  }
  expect(await listDockerResources(result.runId)).toEqual([]);
  return { result, events, text: JSON.stringify(events) };
}

describe("chef in a bake file (stand-in chef-solo)", () => {
  it("bakes an image with the stand-in's change, no staging directory or secret, and no secret in events, history or config", async () => {
    let inImage: StandinResult | undefined;
    const { result, events, text } = await bake(["role[web]"], async (imageId) => {
      const script = `cat ${STANDIN_RESULT}; echo; echo ---; ls -A /tmp /var/tmp; grep -rlsF '${DATA_BAG_SECRET}' /tmp /var /etc /root /opt /usr/local || true`;
      const { stdout } = await run("docker", ["run", "--rm", "--entrypoint", "/bin/sh", imageId, "-c", script]);
      const [json, rest] = stdout.split("\n---\n") as [string, string];
      inImage = JSON.parse(json) as StandinResult;
      expect(rest.trim()).toBe("/tmp:\n\n/var/tmp:");
      const history = (await run("docker", ["history", "--no-trunc", imageId])).stdout;
      const config = (await run("docker", ["image", "inspect", imageId])).stdout;
      for (const seen of [history, config]) {
        expect(seen).not.toContain(DATA_BAG_SECRET);
        expect(seen).not.toContain(DB_PASSWORD);
      }
    });
    expect(result.records[0]?.error).toBeUndefined();
    expect(result.ok).toBe(true);
    expect(inImage?.recipes).toEqual(["base::default", "app::default"]);
    expect(inImage?.attributes).toMatchObject({ app: { greeting: "hello from the bake file", port: 8080, tier: "prod" } });
    // The sensitive attribute reached Chef (a recipe may template it into a config file, as here); it is nowhere else.
    expect(inImage?.attributes).toMatchObject({ app: { db_password: DB_PASSWORD } });
    expect(events).toContainEqual(
      expect.objectContaining({ type: "output", line: "Chef Infra Client finished, 1/1 resources updated (stand-in)" }),
    );
    expect(text).not.toContain(DATA_BAG_SECRET);
    expect(text).not.toContain(DB_PASSWORD);
  });

  it("fails the bake with chef-solo's exit code and FATAL line, leaves no container or image, and keeps secrets out of events", async () => {
    const { result, text } = await bake(["role[web]", "recipe[app::leak_secret]", "recipe[app::fail]"]);
    expect(result.ok).toBe(false);
    const error = result.records[0]?.error;
    expect(error?.code).toBe("E_PROVISION");
    expect(error?.message).toMatch(
      /^chef: chef-solo \(run_list role\[web\], recipe\[app::leak_secret\], recipe\[app::fail\]\) exited with code 1\n/,
    );
    expect(error?.message).toMatch(/FATAL: Mixlib::ShellOut::ShellCommandFailed/);
    expect(error?.message).toContain("the secret is <sensitive>");
    expect(text).toContain("the secret is <sensitive>");
    expect(text).not.toContain(DATA_BAG_SECRET);
    expect(text).not.toContain(DB_PASSWORD);
  });
});

import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BuildRun, loadProject } from "@kiln/core/engine";
import docker from "@kiln/driver-docker";
import { listDockerResources } from "@kiln/driver-docker/testing";
import { testPluginInit } from "@kiln/test-suite";
import file from "../src/index.js";
import { fixtureOptions } from "@kiln/driver-docker/testing";

let dir: string;
beforeAll(async () => {
  await fixtureOptions();
  dir = await mkdtemp(join(tmpdir(), "kiln-file-bake-"));
  await mkdir(join(dir, "site"), { recursive: true });
  await writeFile(join(dir, "site/index.html"), "<h1>hello</h1>\n");
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("file in a bake file", () => {
  it("uploads, writes content with a variable and a mode, and downloads, through the loader and runner", async () => {
    const yaml = [
      "variables:",
      '  app_version: { default: "1.4.2" }',
      "images:",
      "  web:",
      "    driver: docker",
      `    source: ${(await fixtureOptions()).source}`,
      "    provision:",
      "      - file: { source: ./site/, destination: /var/www/ }",
      '      - file: { content: "version={{ app_version }}\\n", destination: /etc/app/version, mode: "0640", timeout: 30s }',
      "      - file: { source: /etc/app/version, destination: out/, direction: download }",
      "    verify:",
      "      checks:",
      "        - file: { path: /var/www/index.html, contains: hello }",
      '        - command: { run: "stat -c %a /etc/app/version", stdout_contains: "640" }',
    ].join("\n");
    await writeFile(join(dir, "kiln.yaml"), yaml);
    const project = await loadProject(join(dir, "kiln.yaml"), { plugins: { registry: { drivers: { docker }, provisioners: { file } } } });
    const result = await new BuildRun({ project, kilnVersion: "test" }).run();
    const artifact = result.records[0]?.artifact;
    try {
      expect(result.records[0]?.error).toBeUndefined();
      expect(result.ok).toBe(true);
      expect(await readFile(join(dir, "out/version"), "utf8")).toBe("version=1.4.2\n");
    } finally {
      if (artifact) await docker(testPluginInit("driver", "docker", { cwd: dir })).remove(artifact);
    }
    expect(await listDockerResources(result.runId)).toEqual([]);
  });
});

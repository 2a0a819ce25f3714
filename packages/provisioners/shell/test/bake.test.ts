import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KilnEvent } from "@kiln/core";
import { BuildRun, loadProject } from "@kiln/core/engine";
import docker from "@kiln/driver-docker";
import { listDockerResources } from "@kiln/driver-docker/testing";
import { testPluginInit } from "@kiln/test-suite";
import shell from "../src/index.js";
import { fixtureOptions } from "@kiln/driver-docker/testing";

let dir: string;
beforeAll(async () => {
  await fixtureOptions();
  dir = await mkdtemp(join(tmpdir(), "kiln-shell-bake-"));
  // biome-ignore lint/suspicious/noTemplateCurlyInString: ${#TOKEN} is shell, not a template.
  await writeFile(join(dir, "setup.sh"), '#!/bin/sh\nset -e\necho "$GREETING" > /etc/greeting\necho "token has ${#TOKEN} chars"\n');
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Bakes `provision` on the fixture image through the real loader and runner, as `kiln build` does. */
async function bake(provision: unknown[], verify?: unknown) {
  const image = { driver: "docker", source: (await fixtureOptions()).source, provision, ...(verify ? { verify } : {}) };
  const variables = { token: { sensitive: true, default: "tok-secret-123456" }, greeting: { default: "hello from kiln" } };
  await writeFile(join(dir, "kiln.yaml"), JSON.stringify({ variables, images: { app: image } }, null, 2));
  const project = await loadProject(join(dir, "kiln.yaml"), { plugins: { registry: { drivers: { docker }, provisioners: { shell } } } });
  const events: KilnEvent[] = [];
  const result = await new BuildRun({ project, kilnVersion: "test", onEvent: (event) => events.push(event) }).run();
  const artifact = result.records[0]?.artifact;
  if (artifact) await docker(testPluginInit("driver", "docker", { cwd: dir })).remove(artifact);
  expect(await listDockerResources(result.runId)).toEqual([]);
  return { result, events, text: JSON.stringify(events) };
}

describe("shell in a bake file", () => {
  it("runs a script with variables in env, Kiln's own step keys, and Packer-style execute_command", async () => {
    const step = {
      shell: {
        script: "./setup.sh",
        env: { TOKEN: "{{ token }}", GREETING: "{{ greeting }}" },
        execute_command: "env -i {{ .Vars }} {{ .Path }}",
        timeout: "60s",
        max_retries: 1,
      },
    };
    const { result, events, text } = await bake([step], { checks: [{ file: { path: "/etc/greeting", contains: "hello from kiln" } }] });
    expect(result.records[0]?.error).toBeUndefined();
    expect(result.ok).toBe(true);
    expect(events).toContainEqual(expect.objectContaining({ type: "output", line: "token has 17 chars" }));
    expect(text).not.toContain("tok-secret-123456");
  });

  it("fails the bake with the step, exit code and output, and keeps secrets out of every event", async () => {
    const step = { shell: { inline: ['echo "using $TOKEN"', "echo cannot continue >&2", "exit 5"], env: { TOKEN: "{{ token }}" } } };
    const { result, text } = await bake([step]);
    expect(result.ok).toBe(false);
    expect(result.records[0]?.error?.code).toBe("E_PROVISION");
    const message = result.records[0]?.error?.message ?? "";
    expect(message).toMatch(/^shell: inline commands \["echo \\"using \$TOKEN\\"", .*\] exited with code 5\nlast output:\n/);
    expect(message).toContain("  using <sensitive>"); // the secret the command printed is redacted
    expect(message).toContain("  cannot continue");
    expect(text).not.toContain("tok-secret-123456");
  });
});

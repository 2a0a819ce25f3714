import { spawn, spawnSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ensureFixtureImage, FIXTURE_IMAGE, removeDockerResources } from "@kiln/driver-docker/testing";
import { CLI, project, runIdOf } from "./helpers.js";

const runs: string[] = [];
afterEach(async () => {
  for (const runId of runs.splice(0)) await removeDockerResources(runId);
});
beforeAll(async () => {
  await ensureFixtureImage();
}, 600_000);

const TOKEN = "tok-3f9a61c2d84e";
// A multi-line secret, as a deploy key would be: every line of 8 or more characters must stay hidden on its own.
const KEY = [
  "-----BEGIN KILN TEST KEY-----",
  "c2VjcmV0LWxpbmUtb25lLW9mLXRoZS1rZXk",
  "c2VjcmV0LWxpbmUtdHdvLW9mLXRoZS1rZXk",
  "-----END KILN TEST KEY-----",
];
const SECRETS = [TOKEN, ...KEY];

/**
 * A bake that uses both secrets the way it should — through env:, never on a command line or in the image — and prints them
 * (a careless script does), sleeping long enough for the host's process list to be read while they are in use.
 */
const BAKE_FILE = `
variables:
  token: { sensitive: true }
  key: { sensitive: true }
images:
  app:
    driver: docker
    source: ${FIXTURE_IMAGE}
    provision:
      - shell:
          env: { TOKEN: "{{ token }}", KEY: "{{ key }}" }
          inline:
            - echo "token is $TOKEN"
            - printf '%s\\n' "$KEY"
            - echo "$TOKEN" | sha256sum > /etc/token.sha256
            - sleep 3
    runtime_only: { variables: [token, key] }
    verify: { checks: [{ file: { path: /etc/token.sha256 } }] }
    tags: ["kiln-secrets-test/app:1"]
`;

/** `kiln build`, sampling every process's command line on this host while it runs. */
function buildWatchingPs(
  dir: string,
  extra: string[],
): Promise<{ code: number | null; stdout: string; stderr: string; commandLines: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, "build", "--force", "-C", dir, ...extra], {
      // The values come from the environment, as the README says to pass secrets.
      env: { ...process.env, CI: "1", KILN_VAR_token: TOKEN, KILN_VAR_key: KEY.join("\n") },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let commandLines = "";
    const sample = setInterval(() => (commandLines += spawnSync("ps", ["-eo", "args"], { encoding: "utf8" }).stdout), 100);
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      clearInterval(sample);
      resolve({ code, stdout, stderr, commandLines });
    });
  });
}

describe("secrets", () => {
  it.each([
    ["plain output", []],
    ["--json events", ["--json"]],
  ])(
    "never appear in %s, the manifest, the image's config, history or files, or any command line",
    { timeout: 300_000 },
    async (_what, extra) => {
      await using dir = await project({ "kiln.yaml": BAKE_FILE });
      const run = await buildWatchingPs(dir.dir, extra);
      runs.push(runIdOf(run.stdout, run.stderr));
      expect(run.code, run.stdout + run.stderr).toBe(0);
      // The careless echo really happened, redacted.
      expect(run.stdout).toContain("token is <sensitive>");
      expect(run.commandLines.length).toBeGreaterThan(0);
      const manifest = await readFile(join(dir.dir, "kiln-manifest.json"), "utf8");
      const inspect = spawnSync("docker", ["image", "inspect", "kiln-secrets-test/app:1"], { encoding: "utf8" }).stdout;
      const history = spawnSync("docker", ["history", "--no-trunc", "kiln-secrets-test/app:1"], { encoding: "utf8" }).stdout;
      // Every file of the image, searched for each secret (fixed strings) — and for root's passwd line, which is there, so an
      // empty answer cannot come from a search that did not run.
      const search = `grep -rlF -e 'root:x:0:0:' ${SECRETS.map((secret) => `-e '${secret}'`).join(" ")} / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev`;
      const files = spawnSync("docker", ["run", "--rm", "--network", "none", "kiln-secrets-test/app:1", "/bin/sh", "-c", search], {
        encoding: "utf8",
      }).stdout;
      expect(files.trim().split("\n")).toEqual(["/etc/passwd"]);
      const places = { output: run.stdout + run.stderr, manifest, inspect, history, "command lines": run.commandLines };
      for (const [place, text] of Object.entries(places)) {
        for (const secret of SECRETS) expect(text.includes(secret), `${place} shows ${secret}`).toBe(false);
      }
      spawnSync("docker", ["rmi", "-f", "kiln-secrets-test/app:1"]);
    },
  );
});

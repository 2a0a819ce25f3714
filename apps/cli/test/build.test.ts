import { spawnSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import Docker from "dockerode";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ensureFixtureImage, FIXTURE_IMAGE, listDockerResources, removeDockerResources } from "@kiln/driver-docker/testing";
import { kiln, project, runIdOf } from "./helpers.js";

const docker = new Docker();
const runs: string[] = [];
afterEach(async () => {
  for (const runId of runs.splice(0)) await removeDockerResources(runId);
});
beforeAll(() => ensureFixtureImage(), 600_000);

const tag = (name: string) => `kiln-cli-test/${name}-${Math.random().toString(36).slice(2, 8)}:1`;

describe("kiln build", { timeout: 180_000 }, () => {
  it("bakes a parent and a child image with provenance labels, a manifest and tags", async () => {
    const baseTag = tag("base");
    const appTag = tag("app");
    await using dir = await project({
      "kiln.yaml": `
variables:
  greeting: { default: hello }
images:
  base:
    driver: docker
    source: ${FIXTURE_IMAGE}
    provision:
      - shell: { inline: ["echo base > /etc/base-marker"] }
    tags: ["${baseTag}"]
  app:
    from: base
    driver: docker
    provision:
      - file: { source: ./files/, destination: /opt/app/ }
      - shell: { inline: ["echo {{ greeting }} from $WHO > /opt/app/greeting"], env: { WHO: kiln } }
    changes: { cmd: ["sleep", "infinity"] }
    verify:
      checks:
        - file: { path: /opt/app/greeting, contains: hello from kiln }
    tags: ["${appTag}"]
`,
      "files/data.txt": "data\n",
    });
    const result = await kiln(["build", "--force", "-C", dir.dir]);
    runs.push(runIdOf(result.stdout, result.stderr));
    expect(result.stderr).toBe("");
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(/==> base: baked .* as kiln-cli-test\/base/);
    expect(result.stdout).toMatch(/==> app: verify 1 check\n {4}app: ✓ file \/opt\/app\/greeting/);

    const manifest = JSON.parse(await readFile(join(dir.dir, "kiln-manifest.json"), "utf8"));
    const [base, app] = manifest.builds;
    expect(manifest.ok).toBe(true);
    expect(base).toMatchObject({ image: "base", status: "baked", tags: [baseTag] });
    expect(app).toMatchObject({ image: "app", status: "baked", parent_id: base.artifact_id, tags: [appTag] });
    expect(app.steps.map((step: { step: string }) => step.step)).toEqual([
      "resolve",
      "launch",
      "provision",
      "provision",
      "capture",
      "verify",
      "tag",
    ]);

    const image = await docker.getImage(appTag).inspect();
    expect(image.Id).toBe(app.artifact_id);
    expect(image.Config.Labels).toMatchObject({
      "dev.kiln.image": "app",
      "dev.kiln.parent": base.artifact_id,
      "dev.kiln.key": app.bake_key,
      "dev.kiln.build": manifest.run_id,
    });
    expect(image.Config.Cmd).toEqual(["sleep", "infinity"]);
    const run = await runContainer(appTag, ["cat", "/opt/app/greeting", "/etc/base-marker", "/opt/app/data.txt"]);
    expect(run).toBe("hello from kiln\nbase\ndata\n");
    expect((await listDockerResources(manifest.run_id)).filter((r) => r.startsWith("container"))).toEqual([]);
  });

  it("the starter written by kiln init bakes and passes its verify", async () => {
    await using dir = await project({});
    expect((await kiln(["init", "-C", dir.dir])).code).toBe(0);
    const result = await kiln(["build", "--force", "-C", dir.dir]);
    runs.push(runIdOf(result.stdout, result.stderr));
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(/app: ✓ http :8000\//);
    await docker
      .getImage("my/app:0.1.0")
      .remove({ force: true })
      .catch(() => {});
    await docker
      .getImage("my/base:0.1.0")
      .remove({ force: true })
      .catch(() => {});
  });

  it("a failing provisioner exits 1 with the command's output and leaves no container behind", async () => {
    await using dir = await project({
      "kiln.yaml": `
images:
  broken:
    driver: docker
    source: ${FIXTURE_IMAGE}
    provision:
      - shell: { inline: ["echo about to fail", "echo the disk is on fire >&2", "exit 42"] }
`,
    });
    const result = await kiln(["build", "--force", "-C", dir.dir]);
    const runId = runIdOf(result.stdout, result.stderr);
    runs.push(runId);
    expect(result.code, result.stdout + result.stderr).toBe(1);
    expect(result.stdout).toMatch(/broken: FAILED/);
    expect(result.stdout).toMatch(/42/);
    expect(result.stdout).toMatch(/the disk is on fire/);
    expect(await listDockerResources(runId)).toEqual([]);
  });

  /** Bakes an image that sleeps while provisioning, and sends `signals` once provisioning has visibly started. */
  async function interruptProvisioning(image: string, signals: NodeJS.Signals[]) {
    await using dir = await project({
      "kiln.yaml": `\nimages:\n  ${image}:\n    driver: docker\n    source: ${FIXTURE_IMAGE}\n    provision:\n      - shell: { inline: ["echo provisioning-started", "sleep 600"] }\n`,
    });
    let sent = false;
    const result = await kiln(["build", "--force", "-C", dir.dir], {
      onStdout: (chunk, child) => {
        if (!sent && /provisioning-started/.test(chunk)) {
          sent = true;
          for (const signal of signals) child.kill(signal);
        }
      },
    });
    const runId = runIdOf(result.stdout, result.stderr);
    runs.push(runId);
    expect(sent).toBe(true);
    return { ...result, runId };
  }

  it("Ctrl-C during provisioning exits 130 and leaves no container behind", async () => {
    const result = await interruptProvisioning("slow", ["SIGINT"]);
    expect(result.code, result.stdout + result.stderr).toBe(130);
    expect(result.stdout).toMatch(/interrupted/);
    expect(await listDockerResources(result.runId)).toEqual([]);
  });

  it("a second Ctrl-C (or SIGTERM) exits at once and lists what was left behind, with the command to remove it", async () => {
    // Two different signals: two of the same kind can merge into one delivery.
    const result = await interruptProvisioning("stubborn", ["SIGTERM", "SIGINT"]);
    expect(result.code, result.stdout + result.stderr).toBe(130);
    expect(result.stdout).toMatch(/forced exit/);
    expect(result.stderr).toMatch(/left behind: container kiln-\S+-stubborn-build-\S+ — remove it: docker rm -f kiln-/);
  });

  it("retries a failing step up to max_retries and fails a step that runs past its timeout", async () => {
    await using dir = await project({
      "kiln.yaml": `
images:
  flaky:
    driver: docker
    source: ${FIXTURE_IMAGE}
    provision:
      - shell: { inline: ["if [ ! -e /tmp/tried ]; then touch /tmp/tried; echo first try fails; exit 1; fi", "echo second try works"], max_retries: 2 }
  hangs:
    driver: docker
    source: ${FIXTURE_IMAGE}
    provision:
      - shell: { inline: ["sleep 600"], timeout: 2s }
`,
    });
    const result = await kiln(["build", "--force", "-C", dir.dir]);
    const runId = runIdOf(result.stdout, result.stderr);
    runs.push(runId);
    expect(result.code, result.stdout).toBe(1);
    expect(result.stdout).toMatch(/flaky: provision failed \(attempt 1\), retrying/);
    expect(result.stdout).toMatch(/flaky: second try works/);
    expect(result.stdout).toMatch(/flaky: baked/);
    expect(result.stdout).toMatch(/hangs: FAILED .*provision\[0\] shell timed out after 2\.0s/);
    expect((await listDockerResources(runId)).filter((resource) => resource.startsWith("container"))).toEqual([]);
  });

  it("verify says clearly when the image's command exits instead of running", async () => {
    await using dir = await project({
      "kiln.yaml": `
images:
  oneshot:
    driver: docker
    source: ${FIXTURE_IMAGE}
    changes: { cmd: ["sh", "-c", "echo one-shot done"] }
    verify: { checks: [{ command: "true" }] }
`,
    });
    const result = await kiln(["build", "--force", "-C", dir.dir]);
    const runId = runIdOf(result.stdout, result.stderr);
    runs.push(runId);
    expect(result.code, result.stdout).toBe(1);
    expect(result.stdout).toMatch(/is not running: its command exited with code 0; last output:\s+one-shot done/);
    expect(await listDockerResources(runId)).toEqual([]);
  });

  it("--on-error=abort keeps the build machine and prints how to attach", async () => {
    await using dir = await project({
      "kiln.yaml": `
images:
  kept:
    driver: docker
    source: ${FIXTURE_IMAGE}
    provision:
      - shell: { inline: ["touch /debug-me", "false"] }
`,
    });
    const result = await kiln(["build", "--force", "-C", dir.dir, "-on-error=abort"]);
    const runId = runIdOf(result.stdout, result.stderr);
    runs.push(runId);
    expect(result.code, result.stdout + result.stderr).toBe(1);
    const attach = /docker exec -it (\S+) \/bin\/sh/.exec(result.stdout);
    expect(attach?.[1]).toBeTruthy();
    // What the user would do next: get into the kept machine and find the state the failed step left.
    const inside = spawnSync("docker", ["exec", attach?.[1] as string, "test", "-e", "/debug-me"]);
    expect(inside.status, inside.stderr.toString()).toBe(0);
    expect(spawnSync("docker", ["exec", attach?.[1] as string, "test", "-e", "/not-made"]).status).toBe(1);
    expect(await listDockerResources(runId)).toHaveLength(1);
  });

  it("--only bakes the named image and the parents it needs; --json prints one event per line", async () => {
    await using dir = await project({
      "kiln.yaml": `
images:
  a: { driver: docker, source: ${FIXTURE_IMAGE} }
  b: { driver: docker, from: a }
  c: { driver: docker, source: ${FIXTURE_IMAGE} }
`,
    });
    const result = await kiln(["build", "--force", "-C", dir.dir, "-only", "b", "--json"]);
    runs.push(runIdOf(result.stdout, result.stderr));
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const events = result.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(events[0]).toMatchObject({ type: "run.start", images: ["a", "b"] });
    expect(events.filter((event) => event.type === "image.done").map((event) => event.image)).toEqual(["a", "b"]);
    expect(events.at(-1)).toMatchObject({ type: "run.end", ok: true });
  });

  it("a failed parent skips its children and still bakes unrelated images", async () => {
    await using dir = await project({
      "kiln.yaml": `
images:
  parent: { driver: docker, source: ${FIXTURE_IMAGE}, provision: [{ shell: { inline: ["exit 1"] } }] }
  child: { driver: docker, from: parent }
  other: { driver: docker, source: ${FIXTURE_IMAGE} }
`,
    });
    const result = await kiln(["build", "--force", "-C", dir.dir]);
    runs.push(runIdOf(result.stdout, result.stderr));
    expect(result.code, result.stdout + result.stderr).toBe(1);
    expect(result.stdout).toMatch(/child: skipped: parent image "parent" was not baked/);
    expect(result.stdout).toMatch(/other: baked/);
  });
});

async function runContainer(image: string, cmd: string[]): Promise<string> {
  const container = await docker.createContainer({ Image: image, Cmd: cmd, Labels: { "dev.kiln.build": "cli-test-run" } });
  try {
    await container.start();
    await container.wait();
    const logs = await container.logs({ stdout: true, stderr: false });
    return demux(logs);
  } finally {
    await container.remove({ force: true });
  }
}

/** Docker's multiplexed log frames → text. */
export function demux(buffer: Buffer): string {
  let text = "";
  for (let offset = 0; offset + 8 <= buffer.length; ) {
    const size = buffer.readUInt32BE(offset + 4);
    text += buffer.subarray(offset + 8, offset + 8 + size).toString();
    offset += 8 + size;
  }
  return text;
}

import { readFile } from "node:fs/promises";
import { join } from "node:path";
import Docker from "dockerode";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ensureFixtureImage, FIXTURE_IMAGE, removeDockerResources } from "@kiln/driver-docker/testing";
import { kiln, project, runIdOf } from "./helpers.js";

const docker = new Docker();
const runs: string[] = [];
afterEach(async () => {
  for (const runId of runs.splice(0)) await removeDockerResources(runId);
});
beforeAll(() => ensureFixtureImage(), 600_000);

/** Containers that any kiln run created for an image of this name: proof that nothing was launched. */
async function containersFor(image: string): Promise<number> {
  return (await docker.listContainers({ all: true, filters: { label: [`dev.kiln.image=${image}`] } })).length;
}

describe("bad input exits 2 with file:line:col before anything is launched", { timeout: 60_000 }, () => {
  const malformed = `variables:
  version: { default: "1" }
images:
  never-launched-web:
    driver: docker
    source: ${FIXTURE_IMAGE}
    privileged: "yes"
    provision:
      - shell: { inline: ["echo {{ verison }}"] }
      - shell: { inline: "not a list", colour: red }
    tags: ["x:{{ version }}"]
`;

  for (const command of ["validate", "build"]) {
    it(`kiln ${command}`, async () => {
      await using dir = await project({ "kiln.yaml": malformed });
      const result = await kiln([command, "-C", dir.dir]);
      expect(result.code, result.stdout + result.stderr).toBe(2);
      expect(result.stderr).toContain("kiln.yaml:7:17: images.never-launched-web.privileged:");
      expect(result.stderr).toContain(
        'kiln.yaml:9:27: images.never-launched-web.provision[0].shell.inline[0]: undefined variable "verison"',
      );
      expect(result.stderr).toContain("kiln.yaml:10:26: images.never-launched-web.provision[1].shell.inline:");
      expect(result.stderr).toMatch(/kiln\.yaml:10:40: images\.never-launched-web\.provision\[1\]\.shell\.colour: unknown key "colour"/);
      expect(await containersFor("never-launched-web")).toBe(0);
    });
  }

  it("YAML syntax errors", async () => {
    await using dir = await project({ "kiln.yaml": "images:\n  web:\n    driver: docker\n   source: [unclosed\n" });
    const result = await kiln(["validate", "-C", dir.dir]);
    expect(result.code, result.stdout + result.stderr).toBe(2);
    expect(result.stderr).toMatch(/kiln\.yaml:\d+:\d+: /);
  });

  it("unknown drivers and provisioners name the package convention, never an install command for what was typed", async () => {
    await using dir = await project({
      "kiln.yaml": `images:\n  web:\n    driver: nosuch\n    source: x\n    provision:\n      - frobnicate: { x: 1 }\n`,
    });
    const result = await kiln(["validate", "-C", dir.dir]);
    expect(result.code, result.stdout + result.stderr).toBe(2);
    expect(result.stderr).toContain('kiln.yaml:3:13: images.web.driver: driver "nosuch" not found');
    expect(result.stderr).toContain("a third-party driver is published as kiln-driver-<name>");
    expect(result.stderr).toContain("a third-party provisioner is published as kiln-provisioner-<name>");
    // An install command built from a typo would invite typosquatting.
    expect(result.stderr).not.toMatch(/(npm install|pnpm add)[^\n]*(nosuch|frobnicate)/);
  });

  it("runtime inputs the driver cannot inject, and runtime_only names that are neither paths nor variables", async () => {
    await using dir = await project({
      "kiln.yaml": `images:\n  a:\n    driver: docker\n    source: x\n    runtime_only: [db_pass]\n    verify:\n      runtime: { user_data: "#cloud-config" }\n      checks: [{ port: 80 }]\n`,
    });
    const result = await kiln(["validate", "-C", dir.dir]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(
      'kiln.yaml:7:18: images.a.verify.runtime.user_data: driver "docker" cannot inject cloud-init user-data',
    );
    expect(result.stderr).toContain(
      'kiln.yaml:5:20: images.a.runtime_only[0]: "db_pass" is neither an absolute path nor a declared variable',
    );
  });

  it("cycles in from:", async () => {
    await using dir = await project({ "kiln.yaml": `images:\n  a: { driver: docker, from: b }\n  b: { driver: docker, from: a }\n` });
    const result = await kiln(["validate", "-C", dir.dir]);
    expect(result.code, result.stdout + result.stderr).toBe(2);
    expect(result.stderr).toMatch(/cycle in from: (a → b → a|b → a → b)/);
  });

  it("missing variable values, unknown flags and commands", async () => {
    await using dir = await project({
      "kiln.yaml": `variables:\n  token: { sensitive: true }\nimages:\n  a: { driver: docker, source: ${FIXTURE_IMAGE} }\n`,
    });
    const missing = await kiln(["validate", "-C", dir.dir]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('variable "token" has no value: pass --var token=… or set KILN_VAR_token');
    expect((await kiln(["validate", "-C", dir.dir, "--var", "nope=1", "--var", "token=x"])).stderr).toContain(
      '--var sets "nope", which the bake file does not declare',
    );
    expect((await kiln(["build", "--frobnicate"])).code).toBe(2);
    expect((await kiln(["frobnicate"])).code).toBe(2);
    expect((await kiln(["build", "--force", "-C", dir.dir, "--only", "zzz", "--var", "token=x"])).stderr).toContain('no image named "zzz"');
  });
});

describe("sensitive variables never show up", { timeout: 120_000 }, () => {
  const SECRET = "s3cr3t-Value-9f8e7d";

  it("in output, --json events, errors, labels or the manifest", async () => {
    await using dir = await project({
      "kiln.yaml": `
variables:
  token: { sensitive: true }
images:
  secretive:
    driver: docker
    source: ${FIXTURE_IMAGE}
    labels: { purpose: test }
    provision:
      - shell:
          env: { TOKEN: "{{ token }}" }
          inline:
            - echo "using token $TOKEN"
            - test "$TOKEN" = "{{ token }}" && echo token-received
  leaky:
    driver: docker
    source: ${FIXTURE_IMAGE}
    provision:
      - shell: { inline: ["echo failing with {{ token }} >&2; exit 3"] }
`,
    });
    for (const mode of [[], ["--json"]]) {
      const result = await kiln(["build", "--force", "-C", dir.dir, ...mode], { env: { KILN_VAR_token: SECRET } });
      runs.push(runIdOf(result.stdout, result.stderr));
      expect(result.code, result.stdout + result.stderr).toBe(1);
      expect(result.stdout).toContain("token-received");
      expect(result.stdout).toContain("<sensitive>");
      expect(result.stdout + result.stderr).not.toContain(SECRET);
      const manifest = await readFile(join(dir.dir, "kiln-manifest.json"), "utf8");
      expect(manifest).not.toContain(SECRET);
      const artifact = JSON.parse(manifest).builds.find((build: { image: string }) => build.image === "secretive").artifact_id;
      const labels = (await docker.getImage(artifact).inspect()).Config.Labels;
      expect(JSON.stringify(labels)).not.toContain(SECRET);
      expect(labels).toMatchObject({ purpose: "test" });
    }
  });

  it("in kiln inspect", async () => {
    await using dir = await project({
      "kiln.yaml": `variables:\n  token: { sensitive: true }\n  plain: { default: visible }\nimages:\n  a:\n    driver: docker\n    source: ${FIXTURE_IMAGE}\n    provision: [{ shell: { inline: ["echo {{ token }} {{ plain }}"] } }]\n`,
    });
    const result = await kiln(["inspect", "-C", dir.dir, "--var", `token=${SECRET}`]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain("token = <sensitive>");
    expect(result.stdout).toContain("plain = visible");
    expect(result.stdout).not.toContain(SECRET);
  });

  it("may not be used in tags", async () => {
    await using dir = await project({
      "kiln.yaml": `variables:\n  token: { sensitive: true, default: x }\nimages:\n  a:\n    driver: docker\n    source: ${FIXTURE_IMAGE}\n    tags: ["repo:{{ token }}"]\n`,
    });
    const result = await kiln(["validate", "-C", dir.dir]);
    expect(result.code, result.stdout + result.stderr).toBe(2);
    expect(result.stderr).toContain('kiln.yaml:7:12: images.a.tags[0]: sensitive variable "token" would be written into the image\'s tags');
  });
});

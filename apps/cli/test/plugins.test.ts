import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, realpath, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PLUGIN_API_VERSION } from "@kiln/core";
import { ensureFixtureImage, FIXTURE_IMAGE, listDockerResources, removeDockerResources } from "@kiln/driver-docker/testing";
import { afterEach, describe, expect, it } from "vitest";
import { CLI, project, runIdOf } from "./helpers.js";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the built `kiln` as a user would (plain output), killed after `timeoutMs` so a hang fails the test. */
function kiln(args: string[], timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, CI: "1" }, timeout: timeoutMs }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function sh(command: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile("/bin/sh", ["-c", command], { timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === "number" ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

/** `node_modules/<name>` in `root`: a package.json and an index.js, as npm would install a third-party plugin. */
async function installPackage(root: string, name: string, indexJs: string, version = "1.0.0"): Promise<string> {
  const dir = join(root, "node_modules", ...name.split("/"));
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "package.json"), JSON.stringify({ name, version, type: "module", exports: { ".": "./index.js" } }));
  await writeFile(join(dir, "index.js"), indexJs);
  return realpath(dir);
}

const passThrough = `{ "~standard": { version: 1, vendor: "test", validate: (value) => ({ value }) } }`;
const notUsed = `async () => { throw new Error("not used"); }`;
const driverMembers = ["resolveSource", "launch", "capture", "launchArtifact", "findArtifacts", "tag", "remove"]
  .map((member) => `${member}: ${notUsed}`)
  .join(", ");

/** A complete driver package's index.js, stamped with plugin API `stamp` as defineDriver of that core would. */
const driverModule = (name: string, stamp = PLUGIN_API_VERSION) =>
  `const factory = () => ({ name: ${JSON.stringify(name)}, schema: ${passThrough}, ${driverMembers} });
factory.kilnPluginApi = ${stamp};
export default factory;
`;
const provisionerModule = (name: string, stamp = PLUGIN_API_VERSION) =>
  `const factory = () => ({ name: ${JSON.stringify(name)}, schema: ${passThrough}, fingerprint: async () => "", run: async () => {} });
factory.kilnPluginApi = ${stamp};
export default factory;
`;

/** A module that leaves a mark when imported: proof that code ran. */
const marking = (mark: string) =>
  `import { writeFileSync } from "node:fs";\nwriteFileSync(${JSON.stringify(mark)}, "ran");\nexport default {};\n`;

describe("plugin names that do not resolve", { timeout: 60_000 }, () => {
  it("kiln validate: did you mean, the other kind, the third-party convention — at file:line:col, exit 2", async () => {
    await using dir = await project({
      "kiln.yaml": [
        /* 1 */ "images:",
        /* 2 */ "  web:",
        /* 3 */ "    driver: dokcer",
        /* 4 */ "    source: debian",
        /* 5 */ "    provision:",
        /* 6 */ "      - shel: { inline: [true] }",
        /* 7 */ "      - docker: {}",
        /* 8 */ "  box: { driver: shell, source: debian }",
        /* 9 */ "  vm: { driver: qemu, source: debian }",
        "",
      ].join("\n"),
    });
    const result = await kiln(["validate", "-C", dir.dir]);
    expect(result.code, result.stdout + result.stderr).toBe(2);
    const problems = result.stderr.split("\n").filter((line) => line.startsWith("  "));
    expect(problems).toEqual([
      expect.stringMatching(/kiln\.yaml:3:13: images\.web\.driver: driver "dokcer" not found \(.*\) — did you mean docker\?$/),
      expect.stringMatching(/kiln\.yaml:6:9: images\.web\.provision\[0\]\.shel: provisioner "shel" not found .* — did you mean shell\b/),
      expect.stringMatching(
        /kiln\.yaml:7:9: images\.web\.provision\[1\]\.docker: .* — docker is a driver, not a provisioner: name it as an image's driver/,
      ),
      expect.stringMatching(/kiln\.yaml:8:18: images\.box\.driver: .* — shell is a provisioner, not a driver: use it as a step/),
      expect.stringMatching(
        /kiln\.yaml:9:17: images\.vm\.driver: driver "qemu" not found .* — a third-party driver is published as kiln-driver-<name>; check the name or install the package that provides it$/,
      ),
    ]);
    // What was typed never becomes an install command: a package named after a typo could be anyone's.
    expect(result.stderr).not.toMatch(/install -D (kiln-driver-)?(dokcer|qemu)|add -D/);
  });

  it("did you mean offers a third-party plugin installed in the project", async () => {
    await using dir = await project({ "kiln.yaml": "images:\n  vm: { driver: qemo, source: debian }\n" });
    await installPackage(dir.dir, "kiln-driver-qemu", driverModule("qemu"));
    const result = await kiln(["validate", "-C", dir.dir]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/kiln\.yaml:2:17: images\.vm\.driver: driver "qemo" not found .* — did you mean qemu\?$/m);
  });
});

/** A project with plugins broken in every way a package can be, each used by the bake file. */
async function brokenProject() {
  const dir = await project({
    "kiln.yaml": [
      /* 1 */ "images:",
      /* 2 */ "  a: { driver: throws, source: s }",
      /* 3 */ "  b: { driver: object, source: s }",
      /* 4 */ "  c:",
      /* 5 */ "    driver: fine",
      /* 6 */ "    source: s",
      /* 7 */ "    provision:",
      /* 8 */ "      - old: {}",
      /* 9 */ "      - tidy: {}",
      "",
    ].join("\n"),
  });
  await installPackage(dir.dir, "kiln-driver-throws", 'throw new Error("needs libvirt");\n');
  await installPackage(dir.dir, "kiln-driver-object", "export default { name: 'object' };\n");
  await installPackage(dir.dir, "kiln-driver-fine", driverModule("fine"), "3.1.4");
  await installPackage(dir.dir, "kiln-provisioner-old", provisionerModule("old", 1));
  await installPackage(dir.dir, "kiln-provisioner-tidy", provisionerModule("tidy"), "0.2.0");
  return dir;
}

describe("plugin load failures", { timeout: 60_000 }, () => {
  it("kiln validate reports every one at its position (throws on import, wrong shape, another core), not just the first", async () => {
    await using dir = await brokenProject();
    const result = await kiln(["validate", "-C", dir.dir]);
    expect(result.code, result.stdout + result.stderr).toBe(2);
    expect(result.stderr).toMatch(/error: \S*kiln\.yaml: 3 problems found/);
    expect(result.stderr).toMatch(/kiln\.yaml:2:16: images\.a\.driver: cannot load package kiln-driver-throws: needs libvirt/);
    expect(result.stderr).toMatch(
      /kiln\.yaml:3:16: images\.b\.driver: package kiln-driver-object does not default-export a driver factory/,
    );
    expect(result.stderr).toMatch(
      /kiln\.yaml:8:9: images\.c\.provision\[0\]\.old: provisioner "old" from package kiln-provisioner-old was built for Kiln plugin API 1; .* — upgrade the plugin/,
    );
  });
});

describe("kiln plugins", { timeout: 60_000 }, () => {
  it("lists each plugin with package, version, path, API version, status and users; explains failures with the fix; exit 2", async () => {
    await using dir = await brokenProject();
    const result = await kiln(["plugins", "-C", dir.dir]);
    expect(result.code, result.stdout + result.stderr).toBe(2);
    const fineDir = await realpath(join(dir.dir, "node_modules/kiln-driver-fine"));
    const block = (heading: string) => {
      const start = result.stdout.indexOf(`\n${heading}:`);
      expect(start, `no "${heading}" in:\n${result.stdout}`).toBeGreaterThan(-1);
      const end = result.stdout.indexOf("\n\n", start + 1);
      return result.stdout.slice(start + 1, end === -1 ? undefined : end);
    };
    expect(block("driver fine")).toBe(
      [
        "driver fine: ok",
        `  package:  kiln-driver-fine@3.1.4, plugin API ${PLUGIN_API_VERSION}`,
        `  path:     ${fineDir}`,
        `  used by:  c: images.c.driver (${join(dir.dir, "kiln.yaml")}:5:13)`,
      ].join("\n"),
    );
    expect(block("driver throws")).toMatch(
      /^driver throws: cannot be imported\n {2}package: {2}kiln-driver-throws@1\.0\.0\n {2}path: .*\n {2}used by: {2}a: images\.a\.driver \(\S*kiln\.yaml:2:16\)\n {2}problem: {2}cannot load package kiln-driver-throws: needs libvirt\n {2}fix: {6}reinstall the package, or fix the module$/,
    );
    expect(block("driver object")).toMatch(
      /^driver object: wrong shape .*[\s\S]*fix: {6}export default defineDriver\(…\) from @kiln\/core$/,
    );
    expect(block("provisioner old")).toMatch(
      /^provisioner old: built for another Kiln core\n {2}package: {2}kiln-provisioner-old@1\.0\.0, plugin API 1\n[\s\S]*fix: {6}upgrade the plugin to a version built for @kiln\/core with plugin API/,
    );
    // The first-party plugins the CLI resolves are listed too, as installed and unused here.
    expect(result.stdout).toMatch(
      /^driver docker: ok \(installed; the bake file does not use it\)\n {2}package: {2}@kiln\/driver-docker@/m,
    );
    expect(result.stdout).toMatch(/3 plugins the bake file names cannot be used: driver object, driver throws, provisioner old$/m);
  });

  it("--json gives the same, one object per plugin", async () => {
    await using dir = await brokenProject();
    const result = await kiln(["plugins", "-C", dir.dir, "--json"]);
    expect(result.code, result.stderr).toBe(2);
    const answer = JSON.parse(result.stdout);
    expect(answer.ok).toBe(false);
    const byName = (kind: string, name: string) =>
      answer.plugins.find((plugin: { kind: string; name: string }) => plugin.kind === kind && plugin.name === name);
    expect(byName("provisioner", "tidy")).toEqual({
      kind: "provisioner",
      name: "tidy",
      status: "ok",
      package: "kiln-provisioner-tidy",
      version: "0.2.0",
      path: await realpath(join(dir.dir, "node_modules/kiln-provisioner-tidy")),
      apiVersion: PLUGIN_API_VERSION,
      installed: true,
      usedBy: [{ image: "c", path: "images.c.provision[1].tidy", file: expect.stringMatching(/kiln\.yaml$/), line: 9, column: 9 }],
    });
    expect(byName("provisioner", "old")).toMatchObject({
      status: "other-core",
      apiVersion: 1,
      problem: { code: "E_PLUGIN_SHAPE", hint: expect.stringMatching(/^upgrade the plugin/) },
    });
    expect(byName("driver", "throws")).toMatchObject({ status: "cannot-load", package: "kiln-driver-throws" });
    expect(byName("driver", "object")).toMatchObject({ status: "wrong-shape" });
  });

  it("a name that is not installed is explained with the hint validate gives", async () => {
    await using dir = await project({ "kiln.yaml": "images:\n  web: { driver: dokcer, source: debian }\n" });
    const result = await kiln(["plugins", "-C", dir.dir]);
    expect(result.code).toBe(2);
    expect(result.stdout).toMatch(
      /^driver dokcer: not installed\n {2}used by: {2}web: images\.web\.driver \(\S*kiln\.yaml:2:18\)\n {2}problem: {2}driver "dokcer" not found .*\n {2}fix: {6}did you mean docker\?$/m,
    );
  });

  it("exits 0 when every plugin the bake file names works, even if an unused installed one is broken", async () => {
    await using dir = await project({ "kiln.yaml": "images:\n  c: { driver: fine, source: s }\n" });
    await installPackage(dir.dir, "kiln-driver-fine", driverModule("fine"));
    await installPackage(dir.dir, "kiln-driver-unused", 'throw new Error("broken");\n');
    const result = await kiln(["plugins", "-C", dir.dir]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^driver unused: cannot be imported \(installed; the bake file does not use it\)$/m);
  });

  it("runs no code of the project: neither a kiln.config.mjs nor a plugins: file", async () => {
    await using dir = await project({
      "kiln.config.mjs": marking("CONFIG_RAN"),
      "plugins/box.mjs": marking("PLUGIN_RAN"),
    });
    const codeConfig = await kiln(["plugins", "-C", dir.dir]);
    expect(codeConfig.code, codeConfig.stdout + codeConfig.stderr).toBe(0);
    expect(codeConfig.stdout).toMatch(
      /^bake file: .*kiln\.config\.mjs is code, and kiln plugins runs none: listing installed plugins only$/m,
    );
    await writeFile(
      join(dir.dir, "kiln.yaml"),
      "plugins:\n  drivers: { box: ./plugins/box.mjs }\nimages:\n  a: { driver: box, source: s }\n",
    );
    const yaml = await kiln(["plugins", "-C", dir.dir]);
    expect(yaml.code, yaml.stdout + yaml.stderr).toBe(0);
    expect(yaml.stdout).toMatch(/^driver box: plugin of the project \(not loaded: kiln plugins runs no code of the project\)$/m);
    expect(yaml.stdout).toContain(`path:     ${await realpath(join(dir.dir, "plugins/box.mjs"))}`);
    expect(existsSync(join(dir.dir, "CONFIG_RAN"))).toBe(false);
    expect(existsSync(join(dir.dir, "PLUGIN_RAN"))).toBe(false);
    expect(existsSync(join(dir.dir, "plugins/CONFIG_RAN"))).toBe(false);
  });
});

describe("kiln inspect", { timeout: 60_000 }, () => {
  it("shows the package (name@version) each driver and step resolved to", async () => {
    await using dir = await project({
      "kiln.yaml":
        'images:\n  web:\n    driver: fine\n    source: s\n    provision:\n      - shell: { inline: ["true"] }\n      - tidy: {}\n',
    });
    await installPackage(dir.dir, "kiln-driver-fine", driverModule("fine"), "3.1.4");
    await installPackage(dir.dir, "kiln-provisioner-tidy", provisionerModule("tidy"), "0.2.0");
    const shellVersion = JSON.parse(
      await readFile(new URL("../../../packages/provisioners/shell/package.json", import.meta.url), "utf8"),
    ).version;
    const text = await kiln(["inspect", "-C", dir.dir]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain("    driver:  fine (kiln-driver-fine@3.1.4)");
    expect(text.stdout).toContain(`      - shell (@kiln/provisioner-shell@${shellVersion})\n      - tidy (kiln-provisioner-tidy@0.2.0)`);
    const json = JSON.parse((await kiln(["inspect", "-C", dir.dir, "--json"])).stdout);
    expect(json.images[0]).toMatchObject({
      driverPackage: "kiln-driver-fine@3.1.4",
      steps: [
        { name: "shell", package: `@kiln/provisioner-shell@${shellVersion}` },
        { name: "tidy", package: "kiln-provisioner-tidy@0.2.0" },
      ],
    });
  });
});

describe("kiln build --on-error=abort", { timeout: 300_000 }, () => {
  const runs: string[] = [];
  afterEach(async () => {
    for (const runId of runs.splice(0)) await removeDockerResources(runId);
  });

  it("prints, next to how to attach, the commands that remove what it kept; running them leaves nothing", async () => {
    await ensureFixtureImage();
    await using dir = await project({
      "kiln.yaml": `images:\n  kept:\n    driver: docker\n    source: ${FIXTURE_IMAGE}\n    provision:\n      - shell: { inline: ["false"] }\n`,
    });
    const result = await kiln(["build", "--force", "-C", dir.dir, "--on-error=abort"], 240_000);
    const runId = runIdOf(result.stdout, result.stderr);
    runs.push(runId);
    expect(result.code, result.stdout + result.stderr).toBe(1);
    expect(await listDockerResources(runId)).toHaveLength(1);
    const removal = /==> kept: when done, remove what it kept with:\n((?: {4}.*\n)+)/.exec(result.stdout);
    expect(removal, result.stdout).not.toBeNull();
    const commands = (removal?.[1] ?? "")
      .split("\n")
      .map((line) => line.trim())
      .filter(Boolean);
    expect(commands).toEqual([expect.stringMatching(/^docker rm -f \S+$/)]);
    for (const command of commands) {
      const ran = await sh(command);
      expect(ran.code, ran.stderr).toBe(0);
    }
    expect(await listDockerResources(runId)).toEqual([]);
  });
});

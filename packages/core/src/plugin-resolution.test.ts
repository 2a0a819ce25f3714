import { existsSync } from "node:fs";
import { mkdir, mkdtemp, realpath, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { listPluginUses, loadProject } from "./config/load.js";
import { pluginInit } from "./plugin-init.js";
import {
  FIRST_PARTY_PLUGINS,
  findInstalledPlugins,
  inspectPlugin,
  loadDriverFactory,
  loadProvisionerFactory,
  type PluginSearch,
} from "./plugins.js";
import { PLUGIN_API_VERSION, type DriverFactory } from "./types.js";
import { failure } from "../test/failure.js";

async function tempDir(): Promise<string> {
  // Real path: /tmp may be a symlink, and the paths reported are resolved ones.
  const dir = await realpath(await mkdtemp(join(tmpdir(), "kiln-resolution-")));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function installPackage(root: string, name: string, indexJs: string, version = "1.0.0"): Promise<string> {
  const dir = join(root, "node_modules", ...name.split("/"));
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "package.json"), JSON.stringify({ name, version, type: "module", exports: { ".": "./index.js" } }));
  await writeFile(join(dir, "index.js"), indexJs);
  return dir;
}

const schema = `{ "~standard": { version: 1, vendor: "test", validate: (value) => ({ value }) } }`;
const notUsed = `async () => { throw new Error("not used"); }`;
const driverMembers = ["resolveSource", "launch", "capture", "launchArtifact", "findArtifacts", "tag", "remove"]
  .map((member) => `${member}: ${notUsed}`)
  .join(", ");

/** A complete driver module; `stamp` is the plugin API version put on its factory (none: unstamped). */
function driverModule(name: string, stamp?: number): string {
  return `const factory = () => ({ name: ${JSON.stringify(name)}, schema: ${schema}, ${driverMembers} });
${stamp === undefined ? "" : `factory.kilnPluginApi = ${stamp};`}
export default factory;
`;
}

function provisionerModule(name: string, stamp?: number): string {
  return `const factory = () => ({ name: ${JSON.stringify(name)}, schema: ${schema}, fingerprint: async () => "", run: async () => {} });
${stamp === undefined ? "" : `factory.kilnPluginApi = ${stamp};`}
export default factory;
`;
}

const hintFor = async (kind: "driver" | "provisioner", name: string, search: PluginSearch) =>
  (await failure(kind === "driver" ? loadDriverFactory(name, search) : loadProvisionerFactory(name, search))).hint;

describe("a plugin name that resolves to nothing", () => {
  it.each(Object.entries(FIRST_PARTY_PLUGINS.driver))("first-party driver %s: names its package %s", async (name, packageName) => {
    expect(await hintFor("driver", name, { from: [await tempDir()] })).toBe(`install it: npm install -D ${packageName}`);
  });

  it.each(Object.entries(FIRST_PARTY_PLUGINS.provisioner))(
    "first-party provisioner %s: names its package %s",
    async (name, packageName) => {
      expect(await hintFor("provisioner", name, { from: [await tempDir()] })).toBe(`install it: npm install -D ${packageName}`);
    },
  );

  it("a close miss of a first-party name: did you mean, and the package of the one meant when it is not installed", async () => {
    const hint = await hintFor("driver", "dokcer", { from: [await tempDir()] });
    expect(hint).toBe("did you mean docker? (not installed: npm install -D @kiln/driver-docker)");
  });

  it("a close miss of an installed third-party plugin, found in a node_modules above the project", async () => {
    const root = await tempDir();
    const projectDir = join(root, "project");
    await mkdir(projectDir);
    await installPackage(root, "kiln-driver-qemu", driverModule("qemu"));
    await installPackage(root, "@acme/kiln-driver-firecracker", driverModule("firecracker"));
    expect(await hintFor("driver", "qemo", { from: [projectDir] })).toBe("did you mean qemu?");
    expect(await hintFor("driver", "@acme/kiln-driver-firecraker", { from: [projectDir] })).toBe(
      "did you mean @acme/kiln-driver-firecracker?",
    );
  });

  it("a close miss of a plugin given directly or declared by the project", async () => {
    const registered: DriverFactory = () => {
      throw new Error("not started");
    };
    const search: PluginSearch = {
      from: [await tempDir()],
      registry: { drivers: { memory: registered } },
      local: { drivers: { sandbox: "/nowhere/sandbox.mjs" }, provisioners: {} },
    };
    expect(await hintFor("driver", "memroy", search)).toBe("did you mean memory?");
    expect(await hintFor("driver", "sandbx", search)).toBe("did you mean sandbox?");
  });

  it("a name of the other kind says which kind it is", async () => {
    const dir = await tempDir();
    await installPackage(dir, "kiln-provisioner-salt", provisionerModule("salt"));
    expect(await hintFor("driver", "shell", { from: [dir] })).toBe(
      "shell is a provisioner, not a driver: use it as a step under provision: (- shell: {…})",
    );
    expect(await hintFor("driver", "salt", { from: [dir] })).toMatch(/^salt is a provisioner, not a driver/);
    expect(await hintFor("provisioner", "docker", { from: [dir] })).toBe(
      "docker is a driver, not a provisioner: name it as an image's driver (driver: docker)",
    );
  });

  it("an unknown third-party name gets the naming convention and no install command (a typo's package could be anyone's)", async () => {
    const hint = await hintFor("driver", "zzfrobnicator", { from: [await tempDir()] });
    expect(hint).toBe("a third-party driver is published as kiln-driver-<name>; check the name or install the package that provides it");
  });
});

describe("every plugin that fails to load is reported at its position, and loading goes on", () => {
  it("throws on import, wrong shape, another core, a factory that throws, a schema that throws", async () => {
    const dir = await tempDir();
    await installPackage(dir, "kiln-driver-throws", 'throw new Error("cannot start: missing libvirt");\n');
    await installPackage(dir, "kiln-driver-object", "export default { name: 'object' };\n");
    await installPackage(dir, "kiln-driver-future", driverModule("future", PLUGIN_API_VERSION + 1));
    await installPackage(dir, "kiln-provisioner-old", provisionerModule("old", 1));
    await installPackage(dir, "kiln-provisioner-crashes", 'export default () => { throw new TypeError("x is undefined"); };\n');
    await installPackage(
      dir,
      "kiln-driver-badschema",
      `export default () => ({ name: "badschema", schema: { "~standard": { validate() { throw new Error("schema bug"); } } }, ${driverMembers} });\n`,
    );
    await installPackage(dir, "kiln-driver-fine", driverModule("fine", PLUGIN_API_VERSION));
    const lines = [
      "images:",
      "  a: { driver: throws, source: s }",
      "  b: { driver: object, source: s }",
      "  c: { driver: future, source: s }",
      "  d:",
      "    driver: fine",
      "    source: s",
      "    provision:",
      "      - old: {}",
      "      - crashes: {}",
      "  e: { driver: badschema, source: s }",
    ];
    await writeFile(join(dir, "kiln.yaml"), `${lines.join("\n")}\n`);
    const error = await failure(loadProject(join(dir, "kiln.yaml")));
    expect(error.exitCode).toBe(2);
    const reported = error.diagnostics.map((d) => `${d.line}:${d.column} ${d.path}: ${d.message}`);
    expect(reported).toEqual([
      "2:16 images.a.driver: cannot load package kiln-driver-throws: cannot start: missing libvirt",
      "3:16 images.b.driver: package kiln-driver-object does not default-export a driver factory",
      `4:16 images.c.driver: driver "future" from package kiln-driver-future was built for Kiln plugin API ${PLUGIN_API_VERSION + 1}; this Kiln speaks version ${PLUGIN_API_VERSION}`,
      `9:9 images.d.provision[0].old: provisioner "old" from package kiln-provisioner-old was built for Kiln plugin API 1; this Kiln speaks version ${PLUGIN_API_VERSION}`,
      '10:9 images.d.provision[1].crashes: provisioner "crashes" from kiln-provisioner-crashes failed to start: x is undefined',
      '11:16 images.e.driver: driver "badschema" could not check its options: schema bug',
    ]);
  });
});

describe("inspectPlugin", () => {
  const init = (dir: string) => pluginInit("driver", "x", dir, { info() {}, warn() {}, debug() {} });

  it("says where a working plugin came from: package, version, directory and plugin API version", async () => {
    const dir = await tempDir();
    const packageDir = await installPackage(dir, "kiln-driver-fine", driverModule("fine", PLUGIN_API_VERSION), "3.1.4");
    expect(await inspectPlugin("driver", "fine", { from: [dir] }, init(dir))).toEqual({
      kind: "driver",
      name: "fine",
      status: "ok",
      package: { name: "kiln-driver-fine", version: "3.1.4" },
      path: packageDir,
      apiVersion: PLUGIN_API_VERSION,
    });
  });

  it.each([
    ["cannot-load", 'throw new Error("boom");\n', /^cannot load package kiln-driver-x: boom$/],
    ["wrong-shape", "export default () => ({ name: 'x' });\n", /^driver "x" from kiln-driver-x is incomplete$/],
    ["other-core", driverModule("x", 1), /was built for Kiln plugin API 1/],
    ["fails-to-start", 'export default () => { throw new Error("no config"); };\n', /failed to start: no config$/],
  ])("status %s, with the package it found and the problem", async (status, indexJs, message) => {
    const dir = await tempDir();
    await installPackage(dir, "kiln-driver-x", indexJs, "0.0.7");
    const report = await inspectPlugin("driver", "x", { from: [dir] }, init(dir));
    expect(report).toMatchObject({ status, package: { name: "kiln-driver-x", version: "0.0.7" }, problem: { message } });
  });

  it("a plugin of the project is reported without importing it", async () => {
    const dir = await tempDir();
    const mark = join(dir, "ran");
    await writeFile(join(dir, "box.mjs"), `import { writeFileSync } from "node:fs";\nwriteFileSync(${JSON.stringify(mark)}, "");\n`);
    const search: PluginSearch = { from: [dir], local: { drivers: { box: join(dir, "box.mjs") }, provisioners: {} } };
    expect(await inspectPlugin("driver", "box", search, init(dir))).toMatchObject({ status: "project-code", path: join(dir, "box.mjs") });
    expect(existsSync(mark)).toBe(false);
  });
});

describe("findInstalledPlugins", () => {
  it("finds plugin packages by naming convention in every node_modules up the tree, reading only package.json", async () => {
    const root = await tempDir();
    const projectDir = join(root, "project");
    await mkdir(projectDir);
    const mark = join(root, "ran");
    const marking = `import { writeFileSync } from "node:fs";\nwriteFileSync(${JSON.stringify(mark)}, "");\n`;
    await installPackage(projectDir, "@kiln/driver-docker", marking, "1.2.3");
    await installPackage(projectDir, "kiln-provisioner-salt", marking);
    await installPackage(root, "@acme/kiln-driver-qemu", marking);
    await installPackage(root, "left-pad", marking);
    await installPackage(root, "@kiln/core", marking);
    const found = await findInstalledPlugins([projectDir]);
    expect(found.map((plugin) => `${plugin.kind} ${plugin.name} ${plugin.package.name}@${plugin.package.version}`).sort()).toEqual([
      "driver @acme/kiln-driver-qemu @acme/kiln-driver-qemu@1.0.0",
      "driver docker @kiln/driver-docker@1.2.3",
      "provisioner salt kiln-provisioner-salt@1.0.0",
    ]);
    expect(existsSync(mark)).toBe(false);
  });
});

describe("listPluginUses", () => {
  it("lists each driver and step with its image and position, through use: lists, and the plugins: files", async () => {
    const dir = await tempDir();
    const lines = [
      "plugins:",
      "  provisioners: { local: ./local.mjs }",
      "steps:",
      "  base:",
      "    - shell: { inline: [true] }",
      "images:",
      "  web:",
      "    driver: docker",
      "    source: debian",
      "    provision:",
      "      - use: base",
      "      - local: {}",
    ];
    await writeFile(join(dir, "kiln.yaml"), `${lines.join("\n")}\n`);
    await writeFile(join(dir, "local.mjs"), "throw new Error('must not run');\n");
    const uses = await listPluginUses(join(dir, "kiln.yaml"));
    expect(uses.code).toBe(false);
    expect(uses.uses).toEqual([
      { kind: "driver", name: "docker", image: "web", path: "images.web.driver", line: 8, column: 13 },
      { kind: "provisioner", name: "shell", image: "web", path: "steps.base[0].shell", via: "base", line: 5, column: 7 },
      { kind: "provisioner", name: "local", image: "web", path: "images.web.provision[1].local", line: 12, column: 9 },
    ]);
    expect(uses.local).toEqual([{ kind: "provisioner", name: "local", path: join(dir, "local.mjs"), line: 2, column: 26 }]);
    expect(uses.problems).toEqual([]);
  });

  it("does not run a bake file that is code", async () => {
    const dir = await tempDir();
    const mark = join(dir, "ran");
    await writeFile(
      join(dir, "kiln.config.mjs"),
      `import { writeFileSync } from "node:fs";\nwriteFileSync(${JSON.stringify(mark)}, "");\n`,
    );
    expect(await listPluginUses(join(dir, "kiln.config.mjs"))).toMatchObject({ code: true, uses: [] });
    expect(existsSync(mark)).toBe(false);
  });
});

import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it, onTestFinished } from "vitest";
import { loadProject } from "./config/load.js";
import { KilnError } from "./errors.js";
import { pluginInit } from "./plugin-init.js";
import { loadDriverFactory, loadProvisionerFactory, packageCandidates } from "./plugins.js";
import { defineDriver, PLUGIN_API_VERSION, type DriverFactory } from "./types.js";
import { failure } from "../test/failure.js";

const init = (cwd: string) => pluginInit("driver", "fake", cwd, { info() {}, warn() {}, debug() {} });

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "kiln-plugins-"));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Installs a package into `<root>/node_modules/<name>` with the given ESM index.js. */
async function installPackage(root: string, name: string, indexJs: string, version = "1.0.0"): Promise<void> {
  const dir = join(root, "node_modules", ...name.split("/"));
  await mkdir(dir, { recursive: true });
  const manifest = { name, version, type: "module", exports: { ".": "./index.js" } };
  await writeFile(join(dir, "package.json"), JSON.stringify(manifest));
  await writeFile(join(dir, "index.js"), indexJs);
}

const passThroughSchema = `{ "~standard": { version: 1, vendor: "test", validate: (value) => ({ value }) } }`;

/** A complete driver package; `origin` tells which package was loaded. */
function driverPackage(origin: string): string {
  return `
const notUsed = async () => { throw new Error("not used"); };
export default (init) => ({
  name: "fake",
  origin: ${JSON.stringify(origin)},
  cwd: init.cwd,
  schema: ${passThroughSchema},
  resolveSource: notUsed, launch: notUsed, capture: notUsed, launchArtifact: notUsed,
  findArtifacts: notUsed, tag: notUsed, remove: notUsed,
});
`;
}

describe("packageCandidates", () => {
  it("tries the first-party scope, then kiln-driver-<name>, then the name itself", () => {
    expect(packageCandidates("driver", "docker")).toEqual(["@kiln/driver-docker", "kiln-driver-docker", "docker"]);
  });

  it("uses the provisioner prefix for provisioners", () => {
    expect(packageCandidates("provisioner", "shell")).toEqual(["@kiln/provisioner-shell", "kiln-provisioner-shell", "shell"]);
  });

  it("tries a scoped package name only as written", () => {
    expect(packageCandidates("driver", "@acme/kiln-driver-qemu")).toEqual(["@acme/kiln-driver-qemu"]);
  });

  it.each(["./evil.mjs", "../x.mjs", "/tmp/x.mjs", "data:text/javascript,process.exit(9)", "file:///tmp/x.mjs", "acme/qemu", "Docker", ""])(
    "refuses %j: a path or URL is not a plugin name",
    (name) => {
      expect(() => packageCandidates("driver", name)).toThrow(expect.objectContaining({ code: "E_DRIVER_NOT_FOUND", exitCode: 2 }));
    },
  );
});

describe("loadDriverFactory", () => {
  it("loads kiln-driver-<name> installed in the given directory", async () => {
    const dir = await tempDir();
    await installPackage(dir, "kiln-driver-fake", driverPackage("kiln-driver-fake"));
    const { factory } = await loadDriverFactory("fake", { from: [dir] });
    expect(factory(init("/work"))).toMatchObject({ name: "fake", origin: "kiln-driver-fake", cwd: "/work" });
  });

  it("prefers @kiln/driver-<name> over kiln-driver-<name>", async () => {
    const dir = await tempDir();
    await installPackage(dir, "kiln-driver-fake", driverPackage("kiln-driver-fake"));
    await installPackage(dir, "@kiln/driver-fake", driverPackage("@kiln/driver-fake"));
    const { factory } = await loadDriverFactory("fake", { from: [dir] });
    expect(factory(init(dir))).toMatchObject({ origin: "@kiln/driver-fake" });
  });

  it("falls back to a package named exactly as the driver", async () => {
    const dir = await tempDir();
    await installPackage(dir, "acme-qemu-driver", driverPackage("acme-qemu-driver"));
    const { factory } = await loadDriverFactory("acme-qemu-driver", { from: [dir] });
    expect(factory(init(dir))).toMatchObject({ origin: "acme-qemu-driver" });
  });

  it("loads a scoped package named in full", async () => {
    const dir = await tempDir();
    await installPackage(dir, "@acme/kiln-driver-qemu", driverPackage("@acme/kiln-driver-qemu"));
    const { factory } = await loadDriverFactory("@acme/kiln-driver-qemu", { from: [dir] });
    expect(factory(init(dir))).toMatchObject({ origin: "@acme/kiln-driver-qemu" });
  });

  it("searches the directories in order: the first that has the package wins", async () => {
    const [bakeFileDir, cliDir] = [await tempDir(), await tempDir()];
    await installPackage(bakeFileDir, "kiln-driver-fake", driverPackage("next to the bake file"));
    await installPackage(cliDir, "kiln-driver-fake", driverPackage("next to the CLI"));
    const { factory } = await loadDriverFactory("fake", { from: [bakeFileDir, cliDir] });
    expect(factory(init(bakeFileDir))).toMatchObject({ origin: "next to the bake file" });
  });

  it("looks in the later directories when the first has no such package", async () => {
    const [bakeFileDir, cliDir] = [await tempDir(), await tempDir()];
    await installPackage(cliDir, "kiln-driver-fake", driverPackage("next to the CLI"));
    const { factory } = await loadDriverFactory("fake", { from: [bakeFileDir, cliDir] });
    expect(factory(init(bakeFileDir))).toMatchObject({ origin: "next to the CLI" });
  });

  it("accepts a file URL as a directory to search", async () => {
    const dir = await tempDir();
    await installPackage(dir, "kiln-driver-fake", driverPackage("kiln-driver-fake"));
    const { factory } = await loadDriverFactory("fake", { from: [pathToFileURL(`${dir}/`).href] });
    expect(factory(init(dir))).toMatchObject({ origin: "kiln-driver-fake" });
  });

  it("uses a registered factory over an installed package of the same name", async () => {
    const dir = await tempDir();
    await installPackage(dir, "kiln-driver-fake", driverPackage("kiln-driver-fake"));
    const registered: DriverFactory = () => {
      throw new Error("registered factory");
    };
    const { factory } = await loadDriverFactory("fake", { from: [dir], registry: { drivers: { fake: registered } } });
    expect(factory).toBe(registered);
  });

  it("says which package and version a driver came from", async () => {
    const dir = await tempDir();
    await installPackage(dir, "kiln-driver-fake", driverPackage("kiln-driver-fake"), "2.3.4");
    expect((await loadDriverFactory("fake", { from: [dir] })).package).toEqual({ name: "kiln-driver-fake", version: "2.3.4" });
  });

  it.each([
    [PLUGIN_API_VERSION + 1, /upgrade Kiln/],
    [1, /upgrade the plugin to a version built for @kiln\/core with plugin API/],
  ])("refuses a driver built for plugin API %s, saying what to upgrade", async (version, hint) => {
    const dir = await tempDir();
    const stamped = driverPackage("kiln-driver-fake").replace("export default (init) =>", "const factory = (init) =>");
    await installPackage(dir, "kiln-driver-fake", `${stamped}\nfactory.kilnPluginApi = ${version};\nexport default factory;\n`);
    const error = await failure(loadDriverFactory("fake", { from: [dir] }));
    expect(error.code).toBe("E_PLUGIN_SHAPE");
    expect(error.message).toBe(
      `driver "fake" from package kiln-driver-fake was built for Kiln plugin API ${version}; this Kiln speaks version ${PLUGIN_API_VERSION}`,
    );
    expect(error.hint).toMatch(hint);
  });

  it("accepts a driver stamped by this core's defineDriver", async () => {
    const factory = defineDriver(() => ({}) as never);
    expect((await loadDriverFactory("fake", { from: [], registry: { drivers: { fake: factory } } })).factory).toBe(factory);
  });

  it("says how third-party drivers are named for one that is not found, never an install command built from the name", async () => {
    const error = await failure(loadDriverFactory("nonesuch", { from: [await tempDir()] }));
    expect(error.code).toBe("E_DRIVER_NOT_FOUND");
    expect(error.exitCode).toBe(2);
    expect(error.message).toBe('driver "nonesuch" not found (looked for @kiln/driver-nonesuch, kiln-driver-nonesuch, nonesuch)');
    expect(error.hint).toBe(
      "a third-party driver is published as kiln-driver-<name>; check the name or install the package that provides it",
    );
  });

  it("offers no install command for a scoped name either", async () => {
    const error = await failure(loadDriverFactory("@acme/kiln-driver-qemu", { from: [await tempDir()] }));
    expect(error.hint).not.toMatch(/install -D|add -D/);
  });

  it("refuses a package whose default export is not a factory", async () => {
    const dir = await tempDir();
    await installPackage(dir, "kiln-driver-fake", `export const driver = () => ({});\nexport default 42;\n`);
    const error = await failure(loadDriverFactory("fake", { from: [dir] }));
    expect(error.code).toBe("E_PLUGIN_SHAPE");
    expect(error.exitCode).toBe(2);
    expect(error.message).toBe("package kiln-driver-fake does not default-export a driver factory");
    expect(error.hint).toBe("export default defineDriver(…) from @kiln/core");
  });

  it("refuses a driver that lacks methods or a schema, naming what is missing", async () => {
    const dir = await tempDir();
    await installPackage(dir, "kiln-driver-fake", `export default () => ({ name: "fake", launch() {}, capture() {} });\n`);
    const { factory } = await loadDriverFactory("fake", { from: [dir] });
    let error: unknown;
    try {
      factory(init(dir));
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(KilnError);
    expect(error).toMatchObject({ code: "E_PLUGIN_SHAPE", exitCode: 2, message: 'driver "fake" from kiln-driver-fake is incomplete' });
    expect((error as KilnError).hint).toMatch(/; missing: resolveSource, launchArtifact, findArtifacts, tag, remove, schema$/);
  });
});

describe("loadProvisionerFactory", () => {
  it("loads kiln-provisioner-<name> from the given directory", async () => {
    const dir = await tempDir();
    await installPackage(
      dir,
      "kiln-provisioner-fake",
      `export default () => ({ name: "fake", schema: ${passThroughSchema}, fingerprint: async () => "", run: async () => {} });\n`,
    );
    const { factory } = await loadProvisionerFactory("fake", { from: [dir] });
    expect(factory(init(dir))).toMatchObject({ name: "fake" });
  });

  it("says how to install a provisioner that is not found", async () => {
    const error = await failure(loadProvisionerFactory("nonesuch", { from: [await tempDir()] }));
    expect(error.code).toBe("E_PROVISIONER_NOT_FOUND");
    expect(error.exitCode).toBe(2);
    expect(error.hint).toBe(
      "a third-party provisioner is published as kiln-provisioner-<name>; check the name or install the package that provides it",
    );
  });

  it("refuses a provisioner without run, naming what is missing", async () => {
    const dir = await tempDir();
    await installPackage(
      dir,
      "kiln-provisioner-fake",
      `export default () => ({ name: "fake", schema: ${passThroughSchema}, fingerprint: async () => "" });\n`,
    );
    const { factory } = await loadProvisionerFactory("fake", { from: [dir] });
    expect(() => factory(init(dir))).toThrow(
      expect.objectContaining({ code: "E_PLUGIN_SHAPE", hint: expect.stringMatching(/missing: run$/) }),
    );
  });
});

describe("plugins installed next to a bake file", () => {
  it("are found by loadProject without being registered", async () => {
    const dir = await tempDir();
    await installPackage(dir, "kiln-driver-fake", driverPackage("kiln-driver-fake"));
    await writeFile(join(dir, "kiln.yaml"), "images:\n  web:\n    driver: fake\n    source: debian\n");
    const project = await loadProject(join(dir, "kiln.yaml"));
    expect(project.images[0]?.driver).toMatchObject({ name: "fake", origin: "kiln-driver-fake", cwd: dir });
  });

  it("make loadProject fail with exit 2 at the driver's position when incomplete", async () => {
    const dir = await tempDir();
    await installPackage(dir, "kiln-driver-fake", `export default () => ({ name: "fake" });\n`);
    await writeFile(join(dir, "kiln.yaml"), "images:\n  web:\n    driver: fake\n    source: debian\n");
    const error = await failure(loadProject(join(dir, "kiln.yaml")));
    expect(error.exitCode).toBe(2);
    expect(error.diagnostics).toEqual([
      expect.objectContaining({ path: "images.web.driver", line: 3, message: 'driver "fake" from kiln-driver-fake is incomplete' }),
    ]);
  });

  it("report a package that cannot be imported (a syntax error) at its position, not as a crash", async () => {
    const dir = await tempDir();
    await installPackage(dir, "kiln-driver-broken", 'export default (init) => ({ name: "broken",\n');
    await writeFile(join(dir, "kiln.yaml"), "images:\n  web:\n    driver: broken\n    source: debian\n");
    const error = await failure(loadProject(join(dir, "kiln.yaml")));
    expect(error.exitCode).toBe(2);
    expect(error.diagnostics[0]).toMatchObject({
      path: "images.web.driver",
      line: 3,
      message: expect.stringMatching(/^cannot load package kiln-driver-broken: /),
    });
  });
});

describe("a bake file names plugins, it never makes validation run code", () => {
  /** A module that leaves a mark on disk when it is imported: proof that code ran. */
  const marking = (mark: string) =>
    `import { writeFileSync } from "node:fs";\nwriteFileSync(${JSON.stringify(mark)}, "ran");\n${driverPackage("local")}`;

  it.each(["./evil.mjs", "../evil.mjs", "data:text/javascript,import('node:fs').then((fs) => fs.writeFileSync('/tmp/kiln-evil', 'ran'))"])(
    "driver: %s is refused at its position and nothing is imported",
    async (name) => {
      const dir = await tempDir();
      const mark = join(dir, "ran");
      await writeFile(join(dir, "evil.mjs"), marking(mark));
      await writeFile(join(dir, "kiln.yaml"), `images:\n  web:\n    driver: ${JSON.stringify(name)}\n    source: debian\n`);
      const error = await failure(loadProject(join(dir, "kiln.yaml"), { runProjectCode: true }));
      expect(error.exitCode).toBe(2);
      expect(error.diagnostics[0]).toMatchObject({
        path: "images.web.driver",
        line: 3,
        message: `driver ${JSON.stringify(name)} is not a plugin name`,
      });
      expect(existsSync(mark)).toBe(false);
    },
  );

  it("a plugin of the project (plugins:) is not imported by validation, which notes that it runs code; a build loads it", async () => {
    const dir = await tempDir();
    const mark = join(dir, "ran");
    await mkdir(join(dir, "plugins"));
    await writeFile(join(dir, "plugins/box.mjs"), marking(mark));
    const yaml = "plugins:\n  drivers: { box: ./plugins/box.mjs }\nimages:\n  web:\n    driver: box\n    source: debian\n";
    await writeFile(join(dir, "kiln.yaml"), yaml);
    const validated = await loadProject(join(dir, "kiln.yaml"));
    expect(existsSync(mark)).toBe(false);
    expect(validated.notices).toEqual([
      expect.objectContaining({
        path: "images.web.driver",
        line: 5,
        message: expect.stringMatching(/^runs code of the project: .*plugins\/box\.mjs \(not loaded now/),
      }),
    ]);
    const built = await loadProject(join(dir, "kiln.yaml"), { runProjectCode: true });
    expect(existsSync(mark)).toBe(true);
    expect(built.images[0]?.driver).toMatchObject({ name: "fake", origin: "local" });
  });

  it("a plugin of the project must be a file inside it", async () => {
    const dir = await tempDir();
    const outside = await tempDir();
    await writeFile(join(outside, "box.mjs"), driverPackage("outside"));
    await symlink(join(outside, "box.mjs"), join(dir, "linked.mjs"));
    const yaml = `plugins:\n  drivers:\n    a: ${join(outside, "box.mjs")}\n    b: ./linked.mjs\nimages:\n  web:\n    driver: a\n    source: debian\n`;
    await writeFile(join(dir, "kiln.yaml"), yaml);
    const error = await failure(loadProject(join(dir, "kiln.yaml"), { runProjectCode: true }));
    expect(error.diagnostics.map((d) => `${d.path}:${d.line}: ${d.message}`)).toEqual([
      `plugins.drivers.a:3: ${join(outside, "box.mjs")} is outside the project`,
      `plugins.drivers.b:4: ./linked.mjs is outside the project (it resolves to ${join(outside, "box.mjs")})`,
      // Never looked up as a package of the same name instead.
      'images.web.driver:7: driver "a" is declared under plugins: with a file that was refused',
    ]);
  });
});

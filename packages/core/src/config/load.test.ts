import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it, onTestFinished } from "vitest";
import { z } from "zod";
import { formatDiagnostic, KilnError, type Diagnostic } from "../errors.js";
import type { PluginRegistry } from "../plugins.js";
import type { DriverFactory, ProvisionerFactory, StandardSchemaV1 } from "../types.js";
import { findBakeFile, loadProject, type LoadOptions } from "./load.js";

// Fake plugins: only their schemas matter here. They are never launched.
const notLaunched = async (): Promise<never> => {
  throw new Error("fake plugins are never launched in these tests");
};

function fakeDriver(name: string, schema: StandardSchemaV1<unknown, unknown>): DriverFactory {
  return () => ({
    name,
    schema,
    resolveSource: notLaunched,
    launch: notLaunched,
    capture: notLaunched,
    launchArtifact: notLaunched,
    findArtifacts: notLaunched,
    tag: notLaunched,
    remove: notLaunched,
  });
}

function fakeProvisioner(name: string, schema: StandardSchemaV1<unknown, unknown>): ProvisionerFactory {
  return () => ({ name, schema, fingerprint: notLaunched, run: notLaunched });
}

const registry: PluginRegistry = {
  drivers: {
    docker: fakeDriver("docker", z.strictObject({ source: z.string().optional(), privileged: z.boolean().optional() })),
  },
  provisioners: {
    shell: fakeProvisioner("shell", z.strictObject({ inline: z.array(z.string()).optional(), script: z.string().optional() })),
  },
};

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "kiln-load-"));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes a bake file into a fresh temp dir; `lines[0]` is line 1. */
async function writeBakeFile(lines: string[], name = "kiln.yaml"): Promise<string> {
  const file = join(await tempDir(), name);
  await writeFile(file, `${lines.join("\n")}\n`);
  return file;
}

function load(file: string, options: LoadOptions = {}) {
  return loadProject(file, { ...options, plugins: { registry, ...options.plugins } });
}

/** Loads a bake file that must be rejected as bad input, and returns the error. */
async function loadFailure(file: string, options: LoadOptions = {}): Promise<KilnError> {
  const error: unknown = await load(file, options).then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  if (!(error instanceof KilnError)) throw new Error(`expected a KilnError, got ${String(error)}`);
  return error;
}

/** Temp dirs lie outside the working directory, so diagnostics name their files by absolute path. */
const shown = (file: string) => file;

const where = (d: Diagnostic) => ({ path: d.path, line: d.line, column: d.column });

describe("loadProject on a valid bake file", () => {
  const validFile = [
    /*  1 */ "variables:",
    /*  2 */ '  app_version: { default: "1.4.2" }',
    /*  3 */ "  token: { sensitive: true, default: hunter2 }",
    /*  4 */ "images:",
    /*  5 */ "  worker:",
    /*  6 */ "    from: web",
    /*  7 */ "    driver: docker",
    /*  8 */ "  web:",
    /*  9 */ "    from: base",
    /* 10 */ "    driver: docker",
    /* 11 */ "    provision:",
    /* 12 */ '      - shell: { inline: ["echo {{ app_version }}"], timeout: 5m, max_retries: 2 }',
    /* 13 */ '      - shell: { script: "login --token {{ token }}" }',
    /* 14 */ '    tags: ["acme/web:{{ app_version }}"]',
    /* 15 */ "  base:",
    /* 16 */ "    driver: docker",
    /* 17 */ '    source: "debian:bookworm"',
    /* 18 */ "    privileged: true",
    /* 19 */ "    timeout: 1h",
  ];

  it("lists images parents first, whatever order the file uses", async () => {
    const project = await load(await writeBakeFile(validFile));
    expect(project.images.map((image) => image.name)).toEqual(["base", "web", "worker"]);
  });

  it("keeps each image's parent", async () => {
    const project = await load(await writeBakeFile(validFile));
    expect(project.images.map((image) => [image.name, image.from])).toEqual([
      ["base", undefined],
      ["web", "base"],
      ["worker", "web"],
    ]);
  });

  it("gives the driver every image key that is not Kiln's own, validated", async () => {
    const project = await load(await writeBakeFile(validFile));
    const base = project.images.find((image) => image.name === "base");
    expect(base?.driverName).toBe("docker");
    expect(base?.driver.name).toBe("docker");
    expect(base?.driverOptions).toEqual({ source: "debian:bookworm", privileged: true });
  });

  it("fills variables into tags and provisioner options", async () => {
    const project = await load(await writeBakeFile(validFile));
    const web = project.images.find((image) => image.name === "web");
    expect(web?.tags).toEqual(["acme/web:1.4.2"]);
    expect(web?.provision[0]?.options).toEqual({ inline: ["echo 1.4.2"] });
  });

  it("lets a sensitive variable be used in provisioner options", async () => {
    const project = await load(await writeBakeFile(validFile));
    const web = project.images.find((image) => image.name === "web");
    expect(web?.provision[1]?.options).toEqual({ script: "login --token hunter2" });
  });

  it("uses a --var value over the variable's default", async () => {
    const project = await load(await writeBakeFile(validFile), { variables: { vars: { app_version: "2.0.0" } } });
    expect(project.images.find((image) => image.name === "web")?.tags).toEqual(["acme/web:2.0.0"]);
  });

  it("takes Kiln's step keys (timeout, max_retries) out of the provisioner's options", async () => {
    const project = await load(await writeBakeFile(validFile));
    const step = project.images.find((image) => image.name === "web")?.provision[0];
    expect(step).toMatchObject({ index: 0, name: "shell", timeoutMs: 300_000, maxRetries: 2 });
    expect(step?.options).not.toHaveProperty("timeout");
  });

  it("parses an image's timeout", async () => {
    const project = await load(await writeBakeFile(validFile));
    expect(project.images.find((image) => image.name === "base")?.timeoutMs).toBe(3_600_000);
  });

  it("returns a redactor that hides sensitive variable values", async () => {
    const project = await load(await writeBakeFile(validFile));
    expect(project.redact("token=hunter2 version=1.4.2")).toBe("token=<sensitive> version=1.4.2");
  });

  it("reports the bake file's absolute path and directory", async () => {
    const file = await writeBakeFile(validFile);
    const project = await load(file);
    expect(project.file).toBe(file);
    expect(project.dir).toBe(join(file, ".."));
  });
});

describe("loadProject diagnostics", () => {
  it("reports every problem found in plugins' options at once, sorted by position", async () => {
    const file = await writeBakeFile([
      /*  1 */ "images:",
      /*  2 */ "  base:",
      /*  3 */ "    driver: docker",
      /*  4 */ "    source: debian",
      /*  5 */ "    privilegd: true",
      /*  6 */ "  web:",
      /*  7 */ "    from: base",
      /*  8 */ "    driver: docker",
      /*  9 */ "    source: debian",
      /* 10 */ "    provision:",
      /* 11 */ '      - shell: { inline: ["true"] }',
      /* 12 */ "      - shell:",
      /* 13 */ '          inline: "apt-get update"',
      /* 14 */ "          scirpt: ./setup.sh",
      /* 15 */ "      - ansibel: { playbook: web.yml }",
      /* 16 */ "  db:",
      /* 17 */ "    driver: foo",
      /* 18 */ "    source: debian",
    ]);
    const error = await loadFailure(file);
    expect(error.diagnostics.map(where)).toEqual([
      { path: "images.base.privilegd", line: 5, column: 5 },
      { path: "images.web.source", line: 9, column: 5 },
      { path: "images.web.provision[1].shell.inline", line: 13, column: 19 },
      { path: "images.web.provision[1].shell.scirpt", line: 14, column: 11 },
      { path: "images.web.provision[2].ansibel", line: 15, column: 9 },
      { path: "images.db.driver", line: 17, column: 13 },
    ]);
  });

  it("counts the problems in the error message", async () => {
    const file = await writeBakeFile([
      "images:",
      "  base:",
      "    driver: docker",
      "    source: debian",
      "    privilegd: true",
      "    hostname: builder",
    ]);
    const error = await loadFailure(file);
    expect(error.message).toBe(`${shown(file)}: 2 problems found`);
  });

  it("points an unknown top-level key at the key", async () => {
    const file = await writeBakeFile([
      /* 1 */ "images:",
      /* 2 */ "  base:",
      /* 3 */ "    driver: docker",
      /* 4 */ "    source: debian",
      /* 5 */ "colour: blue",
    ]);
    const error = await loadFailure(file);
    expect(error.diagnostics).toEqual([
      {
        file: shown(file),
        path: "colour",
        line: 5,
        column: 1,
        message: 'unknown key "colour"',
        hint: "remove it or check its spelling",
      },
    ]);
  });

  it("points a driver option the driver does not know at the key", async () => {
    const file = await writeBakeFile([
      /* 1 */ "images:",
      /* 2 */ "  base:",
      /* 3 */ "    driver: docker",
      /* 4 */ "    source: debian",
      /* 5 */ "    privilegd: true",
    ]);
    const error = await loadFailure(file);
    expect(error.diagnostics).toEqual([
      {
        file: shown(file),
        path: "images.base.privilegd",
        line: 5,
        column: 5,
        message: 'unknown key "privilegd"',
        hint: "remove it or check its spelling",
      },
    ]);
  });

  it("gives each image the driver's project-wide defaults under its own options", async () => {
    const file = await writeBakeFile([
      "defaults:",
      "  docker: { privileged: true, source: debian }",
      "images:",
      "  base: { driver: docker }",
      "  web: { driver: docker, source: alpine, privileged: false }",
    ]);
    const project = await load(file);
    const options = Object.fromEntries(project.images.map((image) => [image.name, image.driverOptions]));
    expect(options).toEqual({ base: { privileged: true, source: "debian" }, web: { privileged: false, source: "alpine" } });
  });

  it("points a bad default at its place under defaults:, once however many images take it", async () => {
    const file = await writeBakeFile([
      /* 1 */ "defaults:",
      /* 2 */ "  docker:",
      /* 3 */ "    privileged: yes please",
      /* 4 */ "    privilegd: true",
      /* 5 */ "images:",
      /* 6 */ "  base: { driver: docker, source: debian }",
      /* 7 */ "  web: { driver: docker, source: debian }",
    ]);
    const error = await loadFailure(file);
    expect(error.diagnostics.map(where)).toEqual([
      { path: "defaults.docker.privileged", line: 3, column: 17 },
      { path: "defaults.docker.privilegd", line: 4, column: 5 },
    ]);
  });

  it("points a provisioner option the provisioner does not know at the key", async () => {
    const file = await writeBakeFile([
      /* 1 */ "images:",
      /* 2 */ "  web:",
      /* 3 */ "    driver: docker",
      /* 4 */ "    source: debian",
      /* 5 */ "    provision:",
      /* 6 */ "      - shell: { inline: [apt-get update], scirpt: ./setup.sh }",
    ]);
    const error = await loadFailure(file);
    expect(error.diagnostics.map(where)).toEqual([{ path: "images.web.provision[0].shell.scirpt", line: 6, column: 44 }]);
    expect(error.diagnostics[0]?.message).toBe('unknown key "scirpt"');
  });

  it("points a provisioner option of the wrong type at its value", async () => {
    const file = await writeBakeFile([
      /* 1 */ "images:",
      /* 2 */ "  web:",
      /* 3 */ "    driver: docker",
      /* 4 */ "    source: debian",
      /* 5 */ "    provision:",
      /* 6 */ '      - shell: { inline: ["true"] }',
      /* 7 */ "      - shell:",
      /* 8 */ "          inline: apt-get update",
    ]);
    const error = await loadFailure(file);
    expect(error.diagnostics.map(where)).toEqual([{ path: "images.web.provision[1].shell.inline", line: 8, column: 19 }]);
    expect(error.diagnostics[0]?.message).toMatch(/expected array, received string/);
  });

  it("points a driver option of the wrong type at its value", async () => {
    const file = await writeBakeFile([
      /* 1 */ "images:",
      /* 2 */ "  base:",
      /* 3 */ "    driver: docker",
      /* 4 */ "    source: debian",
      /* 5 */ '    privileged: "yes"',
    ]);
    const error = await loadFailure(file);
    expect(error.diagnostics.map(where)).toEqual([{ path: "images.base.privileged", line: 5, column: 17 }]);
    expect(error.diagnostics[0]?.message).toMatch(/expected boolean, received string/);
  });

  it("points one of Kiln's own image keys of the wrong type at its value", async () => {
    const file = await writeBakeFile([
      /* 1 */ "images:",
      /* 2 */ "  web:",
      /* 3 */ "    driver: docker",
      /* 4 */ "    source: debian",
      /* 5 */ "    tags: acme/web:latest",
    ]);
    const error = await loadFailure(file);
    expect(error.diagnostics.map(where)).toEqual([{ path: "images.web.tags", line: 5, column: 11 }]);
    expect(error.diagnostics[0]?.message).toMatch(/expected array, received string/);
  });

  it("rejects an image timeout that is not a duration", async () => {
    const file = await writeBakeFile([
      /* 1 */ "images:",
      /* 2 */ "  web:",
      /* 3 */ "    driver: docker",
      /* 4 */ "    source: debian",
      /* 5 */ "    timeout: soon",
    ]);
    const error = await loadFailure(file);
    expect(error.diagnostics.map(where)).toEqual([{ path: "images.web.timeout", line: 5, column: 14 }]);
  });

  it("points a provision step's timeout that is not a duration at the timeout", async () => {
    const file = await writeBakeFile([
      /* 1 */ "images:",
      /* 2 */ "  web:",
      /* 3 */ "    driver: docker",
      /* 4 */ "    source: debian",
      /* 5 */ "    provision:",
      /* 6 */ "      - shell:",
      /* 7 */ '          inline: ["true"]',
      /* 8 */ "          timeout: soon",
    ]);
    const error = await loadFailure(file);
    expect(error.diagnostics.map(where)).toEqual([{ path: "images.web.provision[0].shell.timeout", line: 8, column: 20 }]);
  });

  it("refuses a negative provision step timeout", async () => {
    const file = await writeBakeFile([
      /* 1 */ "images:",
      /* 2 */ "  web:",
      /* 3 */ "    driver: docker",
      /* 4 */ "    source: debian",
      /* 5 */ "    provision:",
      /* 6 */ '      - shell: { inline: ["true"], timeout: -5 }',
    ]);
    const error = await loadFailure(file);
    expect(error.diagnostics.map(where)).toEqual([{ path: "images.web.provision[0].shell.timeout", line: 6, column: 45 }]);
  });

  it("points a provision step's max_retries that is not a whole number at the value", async () => {
    const file = await writeBakeFile([
      /* 1 */ "images:",
      /* 2 */ "  web:",
      /* 3 */ "    driver: docker",
      /* 4 */ "    source: debian",
      /* 5 */ "    provision:",
      /* 6 */ '      - shell: { inline: ["true"], max_retries: 1.5 }',
    ]);
    const error = await loadFailure(file);
    expect(error.diagnostics.map(where)).toEqual([{ path: "images.web.provision[0].shell.max_retries", line: 6, column: 49 }]);
  });

  it("rejects an empty images map", async () => {
    const file = await writeBakeFile(["images: {}"]);
    const error = await loadFailure(file);
    expect(error.diagnostics.map((d) => [d.path, d.message])).toEqual([["images", "no images: add at least one under `images:`"]]);
  });

  it("reports a driver that is neither registered nor installed, with how third-party drivers are named", async () => {
    const file = await writeBakeFile([/* 1 */ "images:", /* 2 */ "  web:", /* 3 */ "    driver: foo", /* 4 */ "    source: debian"]);
    const error = await loadFailure(file);
    expect(error.diagnostics).toEqual([
      {
        file: shown(file),
        path: "images.web.driver",
        line: 3,
        column: 13,
        message: 'driver "foo" not found (looked for @kiln/driver-foo, kiln-driver-foo, foo)',
        hint: "a third-party driver is published as kiln-driver-<name>; check the name or install the package that provides it",
      },
    ]);
  });

  it("reports a provisioner that is neither registered nor installed, at its name", async () => {
    const file = await writeBakeFile([
      /* 1 */ "images:",
      /* 2 */ "  web:",
      /* 3 */ "    driver: docker",
      /* 4 */ "    source: debian",
      /* 5 */ "    provision:",
      /* 6 */ "      - foo: { playbook: web.yml }",
    ]);
    const error = await loadFailure(file);
    expect(error.diagnostics).toEqual([
      {
        file: shown(file),
        path: "images.web.provision[0].foo",
        line: 6,
        column: 9,
        message: 'provisioner "foo" not found (looked for @kiln/provisioner-foo, kiln-provisioner-foo, foo)',
        hint: "a third-party provisioner is published as kiln-provisioner-<name>; check the name or install the package that provides it",
      },
    ]);
  });

  it("reports a variable used in a string but never declared", async () => {
    const file = await writeBakeFile([
      /* 1 */ "images:",
      /* 2 */ "  web:",
      /* 3 */ "    driver: docker",
      /* 4 */ '    source: "debian:{{ debian_release }}"',
    ]);
    const error = await loadFailure(file);
    expect(error.diagnostics).toEqual([
      {
        file: shown(file),
        path: "images.web.source",
        line: 4,
        column: 13,
        message: 'undefined variable "debian_release"',
        hint: "declare it under variables: debian_release: { default: … }",
      },
    ]);
  });

  it("reports an undeclared variable deep inside a provision step", async () => {
    const file = await writeBakeFile([
      /* 1 */ "images:",
      /* 2 */ "  web:",
      /* 3 */ "    driver: docker",
      /* 4 */ "    source: debian",
      /* 5 */ "    provision:",
      /* 6 */ "      - shell:",
      /* 7 */ "          inline:",
      /* 8 */ "            - apt-get update",
      /* 9 */ '            - "echo {{ greeting }}"',
    ]);
    const error = await loadFailure(file);
    expect(error.diagnostics.map(where)).toEqual([{ path: "images.web.provision[0].shell.inline[1]", line: 9, column: 15 }]);
  });

  it("refuses a sensitive variable in tags", async () => {
    const file = await writeBakeFile([
      /* 1 */ "variables:",
      /* 2 */ "  registry_token: { sensitive: true, default: hunter2 }",
      /* 3 */ "images:",
      /* 4 */ "  web:",
      /* 5 */ "    driver: docker",
      /* 6 */ "    source: debian",
      /* 7 */ '    tags: ["acme/web:{{ registry_token }}"]',
    ]);
    const error = await loadFailure(file);
    expect(error.diagnostics).toEqual([
      {
        file: shown(file),
        path: "images.web.tags[0]",
        line: 7,
        column: 12,
        message: `sensitive variable "registry_token" would be written into the image's tags`,
        hint: "tags and labels are public: use a non-sensitive variable",
      },
    ]);
  });

  it("refuses a sensitive variable in labels", async () => {
    const file = await writeBakeFile([
      /* 1 */ "variables:",
      /* 2 */ "  registry_token: { sensitive: true, default: hunter2 }",
      /* 3 */ "images:",
      /* 4 */ "  web:",
      /* 5 */ "    driver: docker",
      /* 6 */ "    source: debian",
      /* 7 */ '    labels: { auth: "{{ registry_token }}" }',
    ]);
    const error = await loadFailure(file);
    expect(error.diagnostics.map(where)).toEqual([{ path: "images.web.labels.auth", line: 7, column: 21 }]);
  });

  it("reports a cycle in from: with the whole chain", async () => {
    const file = await writeBakeFile([
      /* 1 */ "images:",
      /* 2 */ "  a:",
      /* 3 */ "    driver: docker",
      /* 4 */ "    from: b",
      /* 5 */ "  b:",
      /* 6 */ "    driver: docker",
      /* 7 */ "    from: a",
    ]);
    const error = await loadFailure(file);
    expect(error.diagnostics).toEqual([
      {
        file: shown(file),
        path: "images.a.from",
        line: 4,
        column: 11,
        message: "cycle in from: a → b → a",
        hint: "an image cannot be built on itself, directly or through others",
      },
    ]);
  });

  it("reports an image built from itself", async () => {
    const file = await writeBakeFile([/* 1 */ "images:", /* 2 */ "  a:", /* 3 */ "    driver: docker", /* 4 */ "    from: a"]);
    const error = await loadFailure(file);
    expect(error.diagnostics.map((d) => [d.path, d.line, d.message])).toEqual([["images.a.from", 4, "cycle in from: a → a"]]);
  });

  it("reports a parent image that is not defined, listing the ones that are", async () => {
    const file = await writeBakeFile([
      /* 1 */ "images:",
      /* 2 */ "  base:",
      /* 3 */ "    driver: docker",
      /* 4 */ "    source: debian",
      /* 5 */ "  web:",
      /* 6 */ "    driver: docker",
      /* 7 */ "    from: ghost",
    ]);
    const error = await loadFailure(file);
    expect(error.diagnostics).toEqual([
      {
        file: shown(file),
        path: "images.web.from",
        line: 7,
        column: 11,
        message: 'image "ghost" is not defined',
        hint: "define it under images:, or use one of: base, web",
      },
    ]);
  });

  it("refuses an image with both from: and source:, pointing at source", async () => {
    const file = await writeBakeFile([
      /* 1 */ "images:",
      /* 2 */ "  base:",
      /* 3 */ "    driver: docker",
      /* 4 */ "    source: debian",
      /* 5 */ "  web:",
      /* 6 */ "    driver: docker",
      /* 7 */ "    from: base",
      /* 8 */ "    source: debian",
    ]);
    const error = await loadFailure(file);
    expect(error.diagnostics.map(where)).toEqual([{ path: "images.web.source", line: 8, column: 5 }]);
    expect(error.diagnostics[0]?.message).toBe("an image has either `from:` or `source:`, not both");
  });

  it("refuses an image with neither from: nor source:", async () => {
    const file = await writeBakeFile([/* 1 */ "images:", /* 2 */ "  web:", /* 3 */ "    driver: docker", /* 4 */ "    tags: [acme/web]"]);
    const error = await loadFailure(file);
    expect(error.diagnostics.map(where)).toEqual([{ path: "images.web", line: 3, column: 5 }]);
    expect(error.diagnostics[0]?.message).toBe("no `source:` — say what the image starts from");
    expect(error.diagnostics[0]?.hint).toMatch(/from: <another image>/);
  });

  it("reports a YAML syntax error with its line and column", async () => {
    const file = await writeBakeFile([
      /* 1 */ "images:",
      /* 2 */ "  base:",
      /* 3 */ "    driver: docker",
      /* 4 */ "    source: debian: bookworm",
    ]);
    const error = await loadFailure(file);
    expect(error.message).toBe(`${shown(file)}: not valid YAML`);
    expect(error.diagnostics.map((d) => [d.line, d.column])).toEqual([[4, 13]]);
  });

  it("reports a key written twice with the line of the second one", async () => {
    const file = await writeBakeFile([
      /* 1 */ "images:",
      /* 2 */ "  base:",
      /* 3 */ "    driver: docker",
      /* 4 */ "    source: debian",
      /* 5 */ "    source: ubuntu",
    ]);
    const error = await loadFailure(file);
    expect(error.diagnostics.map((d) => [d.message, d.line, d.column])).toEqual([['key "source" appears twice in this map', 5, 5]]);
  });

  it("reports problems with variable references together with problems in plugin options", async () => {
    const file = await writeBakeFile([
      /* 1 */ "images:",
      /* 2 */ "  web:",
      /* 3 */ "    driver: docker",
      /* 4 */ "    source: debian",
      /* 5 */ "    privilegd: true",
      /* 6 */ '    tags: ["acme/web:{{ version }}"]',
    ]);
    const error = await loadFailure(file);
    expect(error.diagnostics.map(where)).toEqual([
      { path: "images.web.privilegd", line: 5, column: 5 },
      { path: "images.web.tags[0]", line: 6, column: 12 },
    ]);
  });

  it("formats a diagnostic as file:line:col: path: message — hint", async () => {
    const file = await writeBakeFile([
      /* 1 */ "images:",
      /* 2 */ "  base:",
      /* 3 */ "    driver: docker",
      /* 4 */ "    source: debian",
      /* 5 */ "    privilegd: true",
    ]);
    const error = await loadFailure(file);
    expect(error.diagnostics.map(formatDiagnostic)).toEqual([
      `${shown(file)}:5:5: images.base.privilegd: unknown key "privilegd" — remove it or check its spelling`,
    ]);
  });

  it("refuses a bake file that does not exist", async () => {
    const file = join(await tempDir(), "kiln.yaml");
    const error = await loadFailure(file);
    expect(error.message).toBe(`cannot read bake file ${shown(file)}: ENOENT`);
    expect(error.hint).toBe("check the path, or create one with `kiln init`");
  });

  it.each([
    ["an unknown top-level key", ["images:", "  a: { driver: docker, source: x }", "colour: blue"]],
    ["an unknown driver option", ["images:", "  a: { driver: docker, source: x, privilegd: true }"]],
    ["an unknown provisioner option", ["images:", "  a: { driver: docker, source: x, provision: [shell: { scirpt: x }] }"]],
    ["a value of the wrong type", ["images:", "  a: { driver: docker, source: x, tags: 3 }"]],
    ["an unknown driver", ["images:", "  a: { driver: foo, source: x }"]],
    ["an unknown provisioner", ["images:", "  a: { driver: docker, source: x, provision: [foo: {}] }"]],
    ["an undefined variable", ["images:", '  a: { driver: docker, source: "{{ nope }}" }']],
    [
      "a sensitive variable in tags",
      ["variables: { t: { sensitive: true, default: s } }", "images:", '  a: { driver: docker, source: x, tags: ["{{ t }}"] }'],
    ],
    ["a cycle in from:", ["images:", "  a: { driver: docker, from: b }", "  b: { driver: docker, from: a }"]],
    ["a missing parent", ["images:", "  a: { driver: docker, from: b }"]],
    ["both from: and source:", ["images:", "  a: { driver: docker, source: x }", "  b: { driver: docker, source: x, from: a }"]],
    ["neither from: nor source:", ["images:", "  a: { driver: docker }"]],
    ["a YAML syntax error", ["images:", "  a: { driver: docker"]],
  ])("rejects %s as bad input: E_CONFIG, exit code 2", async (_problem, lines) => {
    const error = await loadFailure(await writeBakeFile(lines));
    expect(error.code).toBe("E_CONFIG");
    expect(error.exitCode).toBe(2);
    expect(error.diagnostics.length).toBeGreaterThan(0);
  });

  it("reports a declared variable with no value at its declaration, saying how to pass it", async () => {
    const file = await writeBakeFile([
      /* 1 */ "variables:",
      /* 2 */ "  registry_token: { sensitive: true }",
      /* 3 */ "images:",
      /* 4 */ "  web: { driver: docker, source: debian }",
    ]);
    const error = await loadFailure(file);
    expect(error.code).toBe("E_CONFIG");
    expect(error.exitCode).toBe(2);
    expect(error.diagnostics).toEqual([
      {
        file: shown(file),
        path: "variables.registry_token",
        line: 2,
        column: 3,
        message: 'variable "registry_token" has no value: pass --var registry_token=… or set KILN_VAR_registry_token',
      },
    ]);
  });

  it("reports a --var the bake file does not declare", async () => {
    const file = await writeBakeFile(["images:", "  web: { driver: docker, source: debian }"]);
    const error = await loadFailure(file, { variables: { vars: { verison: "2.0" } } });
    expect(error.exitCode).toBe(2);
    expect(error.diagnostics.map((d) => [d.message, d.hint])).toEqual([
      ['--var sets "verison", which the bake file does not declare', "declare it under variables:, or check its spelling"],
    ]);
  });

  it("reports a missing variable value together with problems in the images", async () => {
    const file = await writeBakeFile([
      /* 1 */ "variables:",
      /* 2 */ "  registry_token: { sensitive: true }",
      /* 3 */ "images:",
      /* 4 */ "  web:",
      /* 5 */ "    driver: docker",
      /* 6 */ "    source: debian",
      /* 7 */ "    privilegd: true",
    ]);
    const error = await loadFailure(file);
    expect(error.diagnostics.map(where)).toEqual([
      { path: "variables.registry_token", line: 2, column: 3 },
      { path: "images.web.privilegd", line: 7, column: 5 },
    ]);
  });
});

describe("the file name in diagnostics", () => {
  it("is relative for a bake file under the working directory", async () => {
    const fixture = fileURLToPath(new URL("../../test/fixtures/unknown-key/kiln.yaml", import.meta.url));
    const error = await loadFailure(fixture);
    expect(error.diagnostics.map(formatDiagnostic)).toEqual([
      `${relative(process.cwd(), fixture)}:5:5: images.base.privilegd: unknown key "privilegd" — remove it or check its spelling`,
    ]);
  });
});

describe("loadProject on kiln.config.ts", () => {
  it("loads a config that default-exports an object", async () => {
    const file = await writeBakeFile(
      [
        "export default {",
        "  variables: { version: { default: '3.1' } },",
        "  images: {",
        "    web: { driver: 'docker', from: 'base', tags: ['acme/web:{{ version }}'] },",
        "    base: { driver: 'docker', source: 'debian:bookworm' },",
        "  },",
        "};",
      ],
      "kiln.config.ts",
    );
    const project = await load(file);
    expect(project.images.map((image) => [image.name, image.tags])).toEqual([
      ["base", []],
      ["web", ["acme/web:3.1"]],
    ]);
  });

  it("loads a config written with defineConfig", async () => {
    const defineConfigModule = fileURLToPath(new URL("../define-config.ts", import.meta.url));
    const file = await writeBakeFile(
      [
        `import { defineConfig } from ${JSON.stringify(defineConfigModule)};`,
        "export default defineConfig({",
        "  images: { web: { driver: 'docker', source: 'debian:bookworm', privileged: true } },",
        "});",
      ],
      "kiln.config.ts",
    );
    const project = await load(file);
    expect(project.images[0]?.driverOptions).toEqual({ source: "debian:bookworm", privileged: true });
  });

  it("reports problems in a TypeScript config by path, without a line", async () => {
    const file = await writeBakeFile(
      ["export default {", "  images: { web: { driver: 'docker', source: 'debian', privilegd: true } },", "};"],
      "kiln.config.ts",
    );
    const error = await loadFailure(file);
    expect(error.exitCode).toBe(2);
    expect(error.diagnostics.map(formatDiagnostic)).toEqual([
      `${shown(file)}: images.web.privilegd: unknown key "privilegd" — remove it or check its spelling`,
    ]);
  });

  it("reports a config that throws while loading", async () => {
    const file = await writeBakeFile(['throw new Error("boom");', "export default {};"], "kiln.config.ts");
    const error = await loadFailure(file);
    expect(error.code).toBe("E_CONFIG");
    expect(error.exitCode).toBe(2);
    expect(error.message).toBe(`${shown(file)}: cannot load: boom`);
  });
});

describe("findBakeFile", () => {
  it("prefers kiln.yaml over kiln.config.ts", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, "kiln.config.ts"), "export default {};\n");
    await writeFile(join(dir, "kiln.yaml"), "images: {}\n");
    expect(await findBakeFile(dir)).toBe(join(dir, "kiln.yaml"));
  });

  it("finds kiln.config.ts when there is no YAML file", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, "kiln.config.ts"), "export default {};\n");
    expect(await findBakeFile(dir)).toBe(join(dir, "kiln.config.ts"));
  });

  it("says where it looked and how to create a bake file when there is none", async () => {
    const dir = await tempDir();
    const error = await findBakeFile(dir).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(KilnError);
    expect((error as KilnError).exitCode).toBe(2);
    expect((error as KilnError).message).toBe(
      `no bake file in ${dir} (looked for kiln.yaml, kiln.yml, kiln.config.ts, kiln.config.mts, kiln.config.js, kiln.config.mjs)`,
    );
    expect((error as KilnError).hint).toMatch(/kiln init/);
  });
});

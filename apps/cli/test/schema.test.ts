import { execFile } from "node:child_process";
import { mkdir, readFile, realpath, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { pluginInit, type StandardSchemaV1 } from "@kiln/core";
import { bakeFileJsonSchema } from "@kiln/core/engine";
import { CLI, project } from "./helpers.js";

type JsonSchema = { [key: string]: unknown };

const REPO = fileURLToPath(new URL("../../../", import.meta.url));

/** Every plugin Kiln publishes, by the name a bake file uses and where its source lives in the repository. */
const FIRST_PARTY = [
  { kind: "driver", name: "docker", dir: "packages/drivers/docker" },
  { kind: "driver", name: "ec2", dir: "packages/drivers/ec2" },
  { kind: "driver", name: "lxc", dir: "packages/drivers/lxc" },
  { kind: "driver", name: "vagrant", dir: "packages/drivers/vagrant" },
  { kind: "driver", name: "chroot", dir: "packages/drivers/chroot" },
  { kind: "provisioner", name: "shell", dir: "packages/provisioners/shell" },
  { kind: "provisioner", name: "file", dir: "packages/provisioners/file" },
  { kind: "provisioner", name: "ansible", dir: "packages/provisioners/ansible" },
  { kind: "provisioner", name: "puppet", dir: "packages/provisioners/puppet" },
  { kind: "provisioner", name: "chef", dir: "packages/provisioners/chef" },
] as const;

const isSchema = (value: unknown): value is JsonSchema => typeof value === "object" && value !== null && !Array.isArray(value);

/**
 * Paths (`source.debootstrap.suite`, `changes.expose[]`) of the properties without a description, anywhere in a JSON Schema:
 * inside unions, array items, map values and $refs. An editor shows nothing for those.
 */
function undescribedProperties(root: JsonSchema): string[] {
  const missing: string[] = [];
  const resolveRef = (node: JsonSchema): JsonSchema | undefined => {
    if (typeof node.$ref !== "string" || !node.$ref.startsWith("#/")) return undefined;
    let target: unknown = root;
    for (const part of node.$ref.slice(2).split("/")) target = isSchema(target) ? target[part] : undefined;
    return isSchema(target) ? target : undefined;
  };
  const described = (node: JsonSchema): boolean =>
    (typeof node.description === "string" && node.description.trim() !== "") ||
    (resolveRef(node) ? described(resolveRef(node) as JsonSchema) : false);
  const followed = new Set<JsonSchema>();
  const visit = (node: unknown, path: string): void => {
    if (!isSchema(node)) return;
    const target = resolveRef(node);
    if (target && !followed.has(target)) {
      followed.add(target);
      visit(target, path);
    }
    for (const [key, child] of Object.entries(isSchema(node.properties) ? node.properties : {})) {
      const childPath = path ? `${path}.${key}` : key;
      if (!isSchema(child) || !described(child)) missing.push(childPath);
      visit(child, childPath);
    }
    for (const combinator of ["anyOf", "oneOf", "allOf", "prefixItems"]) {
      const branches = node[combinator];
      if (Array.isArray(branches)) for (const branch of branches) visit(branch, path);
    }
    for (const single of ["not", "if", "then", "else"]) visit(node[single], path);
    visit(node.items, `${path}[]`);
    visit(node.additionalProperties, `${path}.*`);
    if (isSchema(node.patternProperties)) for (const child of Object.values(node.patternProperties)) visit(child, `${path}.*`);
  };
  visit(root, "");
  return missing;
}

/** Runs the built `kiln` in `cwd`, bounded, so a hang fails the test. */
function kilnIn(cwd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd, timeout: 60_000, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** The schema at a path of keys, or undefined where the path ends early. */
function at(node: JsonSchema | undefined, ...keys: string[]): JsonSchema | undefined {
  let current: unknown = node;
  for (const key of keys) current = isSchema(current) ? current[key] : undefined;
  return isSchema(current) ? current : undefined;
}

function driverOptions(root: JsonSchema, driver: string): JsonSchema | undefined {
  const image = ((root.properties as JsonSchema).images as JsonSchema).additionalProperties as JsonSchema;
  const rules = (image.allOf ?? []) as { if: { properties: { driver: { const: string } } }; then: JsonSchema }[];
  return rules.find((rule) => rule.if.properties.driver.const === driver)?.then.properties as JsonSchema | undefined;
}

function stepOptions(root: JsonSchema, provisioner: string): JsonSchema | undefined {
  const image = ((root.properties as JsonSchema).images as JsonSchema).additionalProperties as JsonSchema;
  const variants = ((((image.properties as JsonSchema).provision as JsonSchema).items as JsonSchema).anyOf ?? []) as JsonSchema[];
  const variant = variants.find((candidate) => isSchema(candidate.properties) && provisioner in candidate.properties);
  return ((variant?.properties as JsonSchema | undefined)?.[provisioner] as JsonSchema | undefined)?.properties as JsonSchema | undefined;
}

describe("first-party plugin options", () => {
  const silent = { info() {}, warn() {}, debug() {} };

  it.each(FIRST_PARTY)("every option of the $kind $name has a description", async ({ kind, name, dir }) => {
    const module = (await import(join(REPO, dir, "src/index.ts"))) as { default: (init: unknown) => { schema: StandardSchemaV1 } };
    const schema = module.default(pluginInit(kind, name, REPO, silent)).schema;
    const standard = schema["~standard"] as { jsonSchema?: { input(options: { target: string }): JsonSchema } };
    expect(standard.jsonSchema, `${kind} ${name}: its options schema cannot describe itself as JSON Schema`).toBeDefined();
    const options = standard.jsonSchema?.input({ target: "draft-2020-12" }) ?? {};
    expect(Object.keys((options.properties as JsonSchema | undefined) ?? {}).length, `${kind} ${name}: no options`).toBeGreaterThan(0);
    const missing = undescribedProperties(options).map((path) => `${kind} ${name}: ${path}`);
    expect(missing, `options without a description:\n${missing.join("\n")}`).toEqual([]);

    // …and the bake file's schema carries them, descriptions included.
    const bakeFile = bakeFileJsonSchema(kind === "driver" ? { drivers: { [name]: schema } } : { provisioners: { [name]: schema } });
    const merged = kind === "driver" ? driverOptions(bakeFile, name) : stepOptions(bakeFile, name);
    for (const [option, definition] of Object.entries(options.properties as JsonSchema)) {
      expect((merged?.[option] as JsonSchema | undefined)?.description, `${kind} ${name}: ${option} in kiln.schema.json`).toBe(
        (definition as JsonSchema).description,
      );
    }
  });
});

/** A driver published by someone else, written as its README would tell: defineDriver from @kiln/core, options in zod. */
const FAKE_DRIVER = `import { defineDriver } from "@kiln/core";
import { z } from "zod";

const notHere = async () => { throw new Error("the fake driver bakes nothing"); };
export default defineDriver(() => ({
  name: "fake",
  schema: z.strictObject({
    flavour: z.enum(["plain", "spicy"]).optional().describe("How the fake image tastes. Default plain."),
    shelf: z.strictObject({ row: z.number().int().describe("Row of the shelf the image is kept on.") }).optional().describe("Where it is kept."),
  }),
  resolveSource: notHere, launch: notHere, capture: notHere, launchArtifact: notHere, findArtifacts: notHere, tag: notHere, remove: notHere,
}));
`;

/** A scoped provisioner whose options schema is a hand-written Standard Schema that describes itself (no zod). */
const GREET_PROVISIONER = `import { defineProvisioner } from "@kiln/core";

const jsonSchema = {
  type: "object",
  properties: { greeting: { type: "string", description: "What the provisioner writes to /etc/motd." } },
  required: ["greeting"],
  additionalProperties: false,
};
const schema = {
  "~standard": {
    version: 1,
    vendor: "acme",
    validate: (value) => ({ value }),
    jsonSchema: { input: () => jsonSchema, output: () => jsonSchema },
  },
};
export default defineProvisioner(() => ({ name: "greet", schema, fingerprint: async () => "greet", run: async () => {} }));
`;

/** Installs a package into the project's node_modules, as npm would lay it out. */
async function install(dir: string, name: string, files: Record<string, string>): Promise<void> {
  const root = join(dir, "node_modules", ...name.split("/"));
  await mkdir(root, { recursive: true });
  await writeFile(join(root, "package.json"), JSON.stringify({ name, version: "1.2.3", type: "module", main: "index.js" }));
  for (const [path, content] of Object.entries(files)) await writeFile(join(root, path), content);
}

/** A project with the fake driver, the scoped provisioner, and the two packages they import (linked from this repository). */
async function projectWithThirdPartyPlugins(extra: Record<string, string> = {}) {
  const dir = await project(extra);
  await mkdir(join(dir.dir, "node_modules", "@kiln"), { recursive: true });
  await symlink(join(REPO, "packages/core"), join(dir.dir, "node_modules/@kiln/core"));
  // The zod this repository uses, found through core's own node_modules link.
  await symlink(await realpath(join(REPO, "packages/core/node_modules/zod")), join(dir.dir, "node_modules/zod"));
  await install(dir.dir, "kiln-driver-fake", { "index.js": FAKE_DRIVER });
  await install(dir.dir, "@acme/kiln-provisioner-greet", { "index.js": GREET_PROVISIONER });
  return dir;
}

describe("kiln schema", { timeout: 120_000 }, () => {
  it("includes the options of a third-party driver and provisioner installed in the project, with their descriptions", async () => {
    await using dir = await projectWithThirdPartyPlugins();
    const result = await kilnIn(dir.dir, ["schema"]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toBe("");
    const json = JSON.parse(result.stdout) as JsonSchema;

    const fake = driverOptions(json, "fake");
    expect((fake?.flavour as JsonSchema | undefined)?.description).toBe("How the fake image tastes. Default plain.");
    expect(at(fake, "shelf", "properties", "row")?.description).toBe("Row of the shelf the image is kept on.");
    const greet = stepOptions(json, "@acme/kiln-provisioner-greet");
    expect((greet?.greeting as JsonSchema | undefined)?.description).toBe("What the provisioner writes to /etc/motd.");
    // The steps' own keys come along, and the first-party plugins the CLI brings are still there.
    expect(greet).toHaveProperty("timeout");
    expect((driverOptions(json, "docker")?.privileged as JsonSchema | undefined)?.description).toMatch(/privileged/);
    expect(stepOptions(json, "shell")).toHaveProperty("inline");
    // Where each came from is said on hover.
    expect(JSON.stringify(json)).toContain('Options of the driver \\"fake\\" (kiln-driver-fake 1.2.3).');
  });

  it("leaves out a plugin that fails to load, with a warning naming it, and still prints the schema", async () => {
    await using dir = await projectWithThirdPartyPlugins();
    await install(dir.dir, "kiln-driver-broken", { "index.js": 'throw new Error("broken on purpose");\n' });
    await install(dir.dir, "kiln-provisioner-shapeless", { "index.js": "export const nothing = 1;\n" });
    const result = await kilnIn(dir.dir, ["schema"]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/warning: .*driver "broken".*broken on purpose/);
    expect(result.stderr).toMatch(/warning: .*provisioner "shapeless".*does not default-export/);
    const json = JSON.parse(result.stdout) as JsonSchema;
    expect(driverOptions(json, "broken")).toBeUndefined();
    expect(driverOptions(json, "fake")).toHaveProperty("flavour");
  });

  it("never runs the project's kiln.config.ts", async () => {
    const marker =
      'import { writeFileSync } from "node:fs";\nwriteFileSync(new URL("./RAN", import.meta.url), "ran");\nexport default {};\n';
    await using dir = await projectWithThirdPartyPlugins({ "kiln.config.ts": marker, "kiln.config.mjs": marker });
    const result = await kilnIn(dir.dir, ["schema"]);
    expect(result.code, result.stderr).toBe(0);
    await expect(readFile(join(dir.dir, "RAN"), "utf8")).rejects.toThrow(/ENOENT/);
  });
});

describe("kiln init", { timeout: 120_000 }, () => {
  it("writes kiln.schema.json next to kiln.yaml, with the docker driver's options, and points kiln.yaml at it", async () => {
    await using dir = await project({});
    const result = await kilnIn(dir.dir, ["init"]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(join(dir.dir, "kiln.schema.json"));
    const yaml = await readFile(join(dir.dir, "kiln.yaml"), "utf8");
    expect(yaml.split("\n")[0]).toBe("# yaml-language-server: $schema=./kiln.schema.json");
    const json = JSON.parse(await readFile(join(dir.dir, "kiln.schema.json"), "utf8")) as JsonSchema;
    const docker = driverOptions(json, "docker");
    expect((docker?.privileged as JsonSchema | undefined)?.description).toBe("Run the build container privileged. Default false.");
    expect((docker?.source as JsonSchema | undefined)?.description).toMatch(/Image to start from/);
    const imageKeys = Object.keys(at(json, "properties", "images", "additionalProperties", "properties") ?? {});
    const dockerOwn = Object.fromEntries(Object.entries(docker ?? {}).filter(([key]) => !imageKeys.includes(key)));
    expect(Object.keys(dockerOwn)).toEqual(expect.arrayContaining(["source", "pull", "privileged", "changes"]));
    expect(undescribedProperties({ properties: dockerOwn })).toEqual([]);
  });

  it("includes a third-party driver installed in the project", async () => {
    await using dir = await projectWithThirdPartyPlugins();
    const result = await kilnIn(dir.dir, ["init"]);
    expect(result.code, result.stderr).toBe(0);
    const json = JSON.parse(await readFile(join(dir.dir, "kiln.schema.json"), "utf8")) as JsonSchema;
    expect((driverOptions(json, "fake")?.flavour as JsonSchema | undefined)?.description).toBe("How the fake image tastes. Default plain.");
  });
});

describe("bakeFileJsonSchema with plugins", () => {
  const describes = (jsonSchema: JsonSchema) => ({
    "~standard": { version: 1 as const, vendor: "test", validate: (value: unknown) => ({ value }) },
    ...jsonSchema,
  });

  it("leaves out a plugin whose options cannot describe themselves, and says so", () => {
    const warnings: string[] = [];
    const json = bakeFileJsonSchema({ drivers: { opaque: describes({}) }, warn: (message) => warnings.push(message) });
    expect(driverOptions(json, "opaque")).toBeUndefined();
    expect(warnings).toEqual([expect.stringMatching(/driver "opaque": its options schema cannot describe itself as JSON Schema/)]);
  });

  it("reads options from a schema with a toJSONSchema() method (libraries without Standard JSON Schema)", () => {
    const options = { type: "object", properties: { size: { type: "integer", description: "Disk size in GiB." } } };
    const json = bakeFileJsonSchema({ drivers: { sized: describes({ toJSONSchema: () => options }) } });
    expect(at(driverOptions(json, "sized"), "size")?.description).toBe("Disk size in GiB.");
  });

  it("offers the drivers' names as completions for driver:", () => {
    const json = bakeFileJsonSchema({ drivers: { sized: describes({ toJsonSchema: () => ({ type: "object", properties: {} }) }) } });
    expect(at(json, "properties", "images", "additionalProperties", "properties", "driver")?.examples).toEqual(["sized"]);
  });
});

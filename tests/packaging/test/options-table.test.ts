import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { type Logger, pluginInit } from "@kiln/core";
import { expect, it } from "vitest";
import { type PackedPackage, packed } from "./helpers.ts";

type JsonSchema = { properties?: Record<string, unknown>; anyOf?: JsonSchema[]; oneOf?: JsonSchema[]; allOf?: JsonSchema[] };
/** A Standard Schema that can describe itself as JSON Schema (Standard JSON Schema: zod 4, valibot and others). */
type Describable = { "~standard": { jsonSchema?: { input(options: { target: string }): JsonSchema } } };
type Factory = (init: ReturnType<typeof pluginInit>) => { schema: Describable };

const SILENT: Logger = { info() {}, warn() {}, debug() {} };

/** Every plugin package: the first-party drivers and provisioners, and the example third-party driver. */
const plugins = [...packed().packages, ...(packed().thirdParty ? [packed().thirdParty as PackedPackage] : [])].flatMap((pkg) => {
  const match = /^(?:@kiln\/|kiln-)(driver|provisioner)-(.+)$/.exec(pkg.name);
  return match ? [{ pkg, kind: match[1] as "driver" | "provisioner", name: match[2] as string }] : [];
});

/** Top-level option names, from the plugin's own schema (as JSON Schema), through unions. */
function optionNames(schema: JsonSchema): string[] {
  const branches = [...(schema.anyOf ?? []), ...(schema.oneOf ?? []), ...(schema.allOf ?? [])];
  return [...new Set([...Object.keys(schema.properties ?? {}), ...branches.flatMap(optionNames)])];
}

/** Names in the first column of the README's tables: `source`, `privileged`, `volumes` (…), `source: ami-…` → source. */
function documentedNames(readme: string): Set<string> {
  const names = new Set<string>();
  for (const line of readme.split("\n")) {
    if (!line.startsWith("|") || /^\|\s*:?-/.test(line)) continue;
    const firstCell = line.split("|")[1] ?? "";
    for (const [, code] of firstCell.matchAll(/`([^`]+)`/g)) {
      const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(code as string)?.[0];
      if (name) names.add(name);
    }
  }
  return names;
}

it.each(plugins.map((plugin) => [plugin.pkg.name, plugin] as const))(
  "%s: the README's options table lists every option",
  async (_, plugin) => {
    const manifest = JSON.parse(await readFile(join(plugin.pkg.dir, "package.json"), "utf8")) as { exports: { ".": { default: string } } };
    const module = (await import(pathToFileURL(join(plugin.pkg.dir, manifest.exports["."].default)).href)) as { default: Factory };
    const { schema } = module.default(pluginInit(plugin.kind, plugin.name, plugin.pkg.dir, SILENT));
    const describe = schema["~standard"].jsonSchema;
    expect(describe, `${plugin.pkg.name}: its options schema cannot describe itself as JSON Schema`).toBeDefined();
    const options = optionNames((describe as NonNullable<typeof describe>).input({ target: "draft-2020-12" }));
    expect(options.length, `${plugin.pkg.name}: no options found in its schema`).toBeGreaterThan(0);

    const readme = await readFile(join(plugin.pkg.dir, "README.md"), "utf8").catch(() => "");
    const documented = documentedNames(readme);
    const undocumented = options.filter((option) => !documented.has(option));
    expect(undocumented, `${plugin.pkg.name}: options missing from the first column of a table in its README.md`).toEqual([]);
  },
);

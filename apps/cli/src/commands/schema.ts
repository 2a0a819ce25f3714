import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { isKilnError, type Logger, type PluginKind, pluginInit, type StandardSchemaV1 } from "@kiln/core";
import {
  bakeFileJsonSchema,
  FIRST_PARTY_PLUGINS,
  findInstalledPlugins,
  loadDriverFactory,
  loadProvisionerFactory,
  type PluginSearch,
} from "@kiln/core/engine";
import { parseCommandArgs } from "../args.js";

/** The CLI's own directory: the first-party plugins it depends on resolve from here when the project has none of its own. */
const CLI_DIR = dirname(fileURLToPath(import.meta.url));

/**
 * Prints the bake file's JSON Schema, with the options of every plugin that resolves from the current directory: the
 * first-party ones (the project's, else the CLI's own) and the `kiln-driver-*` / `@scope/kiln-driver-*` packages (and
 * provisioners) installed in its node_modules.
 */
export async function schema(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs("schema", argv);
  const json = await projectJsonSchema(resolve(values.dir ?? "."), (message) => process.stderr.write(`kiln: warning: ${message}\n`));
  process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  return 0;
}

/**
 * The bake file's JSON Schema for a project in `dir`, with the options of each plugin a bake there would resolve. Plugin
 * packages are imported (they are installed code, as `kiln validate` loads them); the project's own code — kiln.config.ts,
 * plugins declared under `plugins:` — never runs. A plugin that fails to load is left out, with a warning.
 */
export async function projectJsonSchema(dir: string, warn: (message: string) => void): Promise<Record<string, unknown>> {
  const projectDir = resolve(dir);
  const search: PluginSearch = { from: [projectDir, CLI_DIR] };
  const installed = await findInstalledPlugins([projectDir]);
  const names = (kind: PluginKind) => [
    ...new Set([
      ...Object.keys(FIRST_PARTY_PLUGINS[kind]),
      ...installed.filter((plugin) => plugin.kind === kind).map((plugin) => plugin.name),
    ]),
  ];
  const silent: Logger = { info() {}, warn() {}, debug() {} };

  async function optionsOf(
    kind: PluginKind,
    name: string,
  ): Promise<[string, { schema: StandardSchemaV1; description: string }] | undefined> {
    try {
      const loaded = kind === "driver" ? await loadDriverFactory(name, search) : await loadProvisionerFactory(name, search);
      const plugin = (loaded.factory as (init: unknown) => { schema: StandardSchemaV1 })(pluginInit(kind, name, projectDir, silent));
      const from = loaded.package ? ` (${loaded.package.name} ${loaded.package.version})` : "";
      return [name, { schema: plugin.schema, description: `Options of the ${kind} "${name}"${from}.` }];
    } catch (error) {
      // A first-party plugin neither the project nor the CLI has is simply not offered.
      const notFound = isKilnError(error) && (error.code === "E_DRIVER_NOT_FOUND" || error.code === "E_PROVISIONER_NOT_FOUND");
      if (notFound && !installed.some((plugin) => plugin.kind === kind && plugin.name === name)) return undefined;
      const message = error instanceof Error ? error.message : String(error);
      const hint = isKilnError(error) && error.hint ? ` (${error.hint})` : "";
      warn(`left the ${kind} "${name}" out of the schema: ${message.split("\n")[0]}${hint}`);
      return undefined;
    }
  }

  // One at a time, so warnings come in the same order every run.
  const load = async (kind: PluginKind) => {
    const entries = [];
    for (const name of names(kind)) entries.push(await optionsOf(kind, name));
    return Object.fromEntries(entries.filter((entry) => entry !== undefined));
  };
  return bakeFileJsonSchema({ drivers: await load("driver"), provisioners: await load("provisioner"), warn });
}

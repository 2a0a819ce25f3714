import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { KilnError } from "./errors.js";
import { type DriverFactory, type Logger, PLUGIN_API_KEY, PLUGIN_API_VERSION, type PluginInit, type ProvisionerFactory } from "./types.js";

export type PluginKind = "driver" | "provisioner";

/** Plugins given directly (library use, tests); they win over packages of the same name. */
export interface PluginRegistry {
  drivers?: Record<string, DriverFactory<unknown>>;
  provisioners?: Record<string, ProvisionerFactory<unknown>>;
}

export interface PluginSearch {
  /** Directories (or file URLs) to resolve packages from, in order: the bake file's directory first, then the CLI's. */
  from: string[];
  registry?: PluginRegistry;
  /** Plugins the bake file declares under `plugins:`: name → absolute path of a module inside the project (null: refused). */
  local?: { drivers: Record<string, string | null>; provisioners: Record<string, string | null> };
  /**
   * Whether a local plugin may be imported — that runs the project's own code. `kiln validate` and `kiln inspect` say no, so
   * a bake file can be checked before anyone trusts it; installed packages are loaded either way.
   */
  runProjectCode?: boolean;
}

const REQUIRED_MEMBERS: Record<PluginKind, string[]> = {
  driver: ["resolveSource", "launch", "capture", "launchArtifact", "findArtifacts", "tag", "remove"],
  provisioner: ["fingerprint", "run"],
};

/** An npm package name, optionally scoped: all a `driver:` or a provision step may name (never a path or a URL). */
const PACKAGE_NAME = /^(?:@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]*$/;

export function isPluginName(name: string): boolean {
  return name.length <= 214 && PACKAGE_NAME.test(name);
}

/**
 * `docker` → `@kiln/driver-docker`, `kiln-driver-docker`, `docker`; a scoped name is tried as written. Anything that is not
 * a package name — a path, a URL — is refused: naming a file would make `kiln validate` run it.
 */
export function packageCandidates(kind: PluginKind, name: string): string[] {
  if (!isPluginName(name)) {
    throw new KilnError(kind === "driver" ? "E_DRIVER_NOT_FOUND" : "E_PROVISIONER_NOT_FOUND", `${kind} "${name}" is not a plugin name`, {
      hint: `name an installed package (kiln-${kind}-foo, @acme/kiln-${kind}-foo), or declare a plugin of this project under plugins: { ${kind}s: { foo: ./plugins/foo.mjs } }`,
    });
  }
  if (name.startsWith("@")) return [name];
  return [`@kiln/${kind}-${name}`, `kiln-${kind}-${name}`, name];
}

/** The npm package a plugin came from: its name and version enter the bake key and the artefact's provenance. */
export interface PluginPackage {
  name: string;
  version: string;
}

export interface LoadedPlugin<F> {
  factory: F;
  /** Undefined for plugins given directly (`registry`). */
  package?: PluginPackage;
  /** A plugin of the project (`plugins:`): its file, and whether it was loaded (`runProjectCode`) or stands in unloaded. */
  local?: { path: string; loaded: boolean };
}

export async function loadDriverFactory(name: string, search: PluginSearch): Promise<LoadedPlugin<DriverFactory<unknown>>> {
  const given = search.registry?.drivers?.[name];
  if (given) return { factory: checkApiVersion("driver", name, "the registry", given) };
  const local = search.local?.drivers[name];
  if (local !== undefined) return (await localPlugin("driver", name, local, search)) as LoadedPlugin<DriverFactory<unknown>>;
  return (await importPlugin("driver", name, search)) as LoadedPlugin<DriverFactory<unknown>>;
}

export async function loadProvisionerFactory(name: string, search: PluginSearch): Promise<LoadedPlugin<ProvisionerFactory<unknown>>> {
  const given = search.registry?.provisioners?.[name];
  if (given) return { factory: checkApiVersion("provisioner", name, "the registry", given) };
  const local = search.local?.provisioners[name];
  if (local !== undefined) return (await localPlugin("provisioner", name, local, search)) as LoadedPlugin<ProvisionerFactory<unknown>>;
  return (await importPlugin("provisioner", name, search)) as LoadedPlugin<ProvisionerFactory<unknown>>;
}

/**
 * A plugin the bake file declares: imported only when the project's code may run; otherwise a stand-in that accepts any
 * options and refuses to do anything, so validation goes on without running it.
 */
async function localPlugin(kind: PluginKind, name: string, path: string | null, search: PluginSearch): Promise<LoadedPlugin<unknown>> {
  // Refused (and reported) where plugins: names it; never looked up as a package of the same name instead.
  if (path === null)
    throw new KilnError("E_CONFIG", `${kind} "${name}" is declared under plugins: with a file that was refused`, {
      hint: "see the problem reported at plugins:",
    });
  if (!search.runProjectCode) return { factory: standIn(kind, name, path), local: { path, loaded: false } };
  const module = await importModule(pathToFileURL(path).href, `${kind} "${name}" (${path})`);
  return { factory: checkShape(kind, name, path, module), local: { path, loaded: true } };
}

function standIn(kind: PluginKind, name: string, path: string): unknown {
  const notLoaded = async (): Promise<never> => {
    throw new KilnError("E_CONFIG", `${kind} "${name}" (${path}) is code of the project and was not loaded`, {
      hint: "kiln validate and kiln inspect run no project code; kiln build does",
    });
  };
  const anything = { "~standard": { version: 1, vendor: "kiln", validate: (value: unknown) => ({ value }) } };
  const members = Object.fromEntries(REQUIRED_MEMBERS[kind].map((member) => [member, notLoaded]));
  return () => ({ name, schema: anything, ...members });
}

/** import(), with a failure (a syntax error, a missing dependency) as a KilnError rather than a crash. */
async function importModule(url: string, what: string): Promise<Record<string, unknown>> {
  try {
    return (await import(url)) as Record<string, unknown>;
  } catch (error) {
    throw new KilnError("E_PLUGIN_SHAPE", `cannot load ${what}: ${(error as Error).message?.split("\n")[0] ?? String(error)}`, {
      hint: "reinstall the package, or fix the module",
      cause: error,
    });
  }
}

/**
 * What a plugin factory is given: the bake file's directory, its own state and cache directories (named after the plugin
 * kind and name, so a driver and a provisioner of one name never share one), and a logger.
 */
export function pluginInit(kind: PluginKind, name: string, cwd: string, log: Logger): PluginInit {
  const env = process.env;
  const own = `${kind}-${name.replace(/^@/, "").replace(/[^A-Za-z0-9_.-]/g, "-")}`;
  const stateRoot = env.KILN_STATE_DIR ?? join(env.XDG_STATE_HOME ?? join(homedir(), ".local", "state"), "kiln");
  const cacheRoot = env.KILN_CACHE_DIR ?? join(env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "kiln");
  return { cwd, stateDir: join(stateRoot, own), cacheDir: join(cacheRoot, own), log };
}

async function importPlugin(kind: PluginKind, name: string, search: PluginSearch): Promise<LoadedPlugin<unknown>> {
  const candidates = packageCandidates(kind, name);
  for (const specifier of candidates) {
    for (const base of search.from) {
      const url = await tryResolve(specifier, base);
      if (!url) continue;
      const module = await importModule(url, `package ${specifier}`);
      const found = await packageOf(url);
      return { factory: checkShape(kind, name, specifier, module), ...(found ? { package: found } : {}) };
    }
  }
  const suggestion = candidates.length > 1 ? candidates[1] : candidates[0];
  throw new KilnError(
    kind === "driver" ? "E_DRIVER_NOT_FOUND" : "E_PROVISIONER_NOT_FOUND",
    `${kind} "${name}" not found (looked for ${candidates.join(", ")})`,
    { hint: `install it: pnpm add -D ${suggestion}` },
  );
}

async function tryResolve(specifier: string, base: string): Promise<string | undefined> {
  const parent = base.startsWith("file:") ? base : pathToFileURL(base.endsWith("/") ? base : `${base}/`).href;
  // Node 20 cannot resolve from an arbitrary parent with import.meta.resolve; this library implements the same algorithm.
  const { resolve: resolveSpecifier } = await import("import-meta-resolve");
  try {
    return resolveSpecifier(specifier, parent);
  } catch {
    return undefined;
  }
}

/** The nearest package.json above a resolved module: the package it belongs to. */
async function packageOf(url: string): Promise<PluginPackage | undefined> {
  if (!url.startsWith("file:")) return undefined;
  for (let dir = dirname(fileURLToPath(url)); ; dir = dirname(dir)) {
    const text = await readFile(join(dir, "package.json"), "utf8").catch(() => undefined);
    const manifest = text === undefined ? undefined : (JSON.parse(text) as { name?: unknown; version?: unknown });
    if (typeof manifest?.name === "string")
      return { name: manifest.name, version: typeof manifest.version === "string" ? manifest.version : "0.0.0" };
    if (dirname(dir) === dir) return undefined;
  }
}

/** A factory stamped by `defineDriver`/`defineProvisioner` of another core than this one speaks another contract. */
function checkApiVersion<F>(kind: PluginKind, name: string, from: string, factory: F): F {
  const stamped = (factory as Record<string, unknown>)[PLUGIN_API_KEY];
  if (stamped === undefined || stamped === PLUGIN_API_VERSION) return factory;
  const newer = typeof stamped === "number" && stamped > PLUGIN_API_VERSION;
  throw new KilnError(
    "E_PLUGIN_SHAPE",
    `${kind} "${name}" from ${from} was built for Kiln plugin API ${String(stamped)}; this Kiln speaks version ${PLUGIN_API_VERSION}`,
    {
      hint: newer
        ? "upgrade Kiln (@kiln/cli and @kiln/core) to a version that supports it"
        : `upgrade the plugin to a version built for @kiln/core with plugin API ${PLUGIN_API_VERSION}`,
    },
  );
}

/** A plugin package default-exports its factory. */
function checkShape(kind: PluginKind, name: string, specifier: string, module: Record<string, unknown>): unknown {
  const factory = module.default;
  if (typeof factory !== "function") {
    throw new KilnError("E_PLUGIN_SHAPE", `package ${specifier} does not default-export a ${kind} factory`, {
      hint: `export default define${kind === "driver" ? "Driver" : "Provisioner"}(…) from @kiln/core`,
    });
  }
  checkApiVersion(kind, name, `package ${specifier}`, factory);
  return (init: unknown) => {
    let plugin: Record<string, unknown>;
    try {
      plugin = (factory as (init: unknown) => Record<string, unknown>)(init);
    } catch (error) {
      if (error instanceof KilnError) throw error;
      throw new KilnError("E_PLUGIN_SHAPE", `${kind} "${name}" from ${specifier} failed to start: ${(error as Error).message}`, {
        cause: error,
      });
    }
    const missing = REQUIRED_MEMBERS[kind].filter((member) => typeof plugin?.[member] !== "function");
    const schema = plugin?.schema as { "~standard"?: unknown } | undefined;
    if (missing.length > 0 || !schema?.["~standard"]) {
      throw new KilnError("E_PLUGIN_SHAPE", `${kind} "${name}" from ${specifier} is incomplete`, {
        hint: `it must have ${[...REQUIRED_MEMBERS[kind], "schema (a Standard Schema)"].join(", ")}; missing: ${[...missing, ...(schema?.["~standard"] ? [] : ["schema"])].join(", ")}`,
      });
    }
    return plugin;
  };
}

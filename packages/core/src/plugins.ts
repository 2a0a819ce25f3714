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
}

const REQUIRED_MEMBERS: Record<PluginKind, string[]> = {
  driver: ["resolveSource", "launch", "capture", "launchArtifact", "findArtifacts", "tag", "remove"],
  provisioner: ["fingerprint", "run"],
};

/** `docker` → `@kiln/driver-docker`, `kiln-driver-docker`, `docker`. A scoped or relative name is tried as written. */
export function packageCandidates(kind: PluginKind, name: string): string[] {
  if (name.startsWith("@") || name.startsWith(".") || name.includes("/")) return [name];
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
}

export async function loadDriverFactory(name: string, search: PluginSearch): Promise<LoadedPlugin<DriverFactory<unknown>>> {
  const given = search.registry?.drivers?.[name];
  if (given) return { factory: checkApiVersion("driver", name, "the registry", given) };
  return (await importPlugin("driver", name, search)) as LoadedPlugin<DriverFactory<unknown>>;
}

export async function loadProvisionerFactory(name: string, search: PluginSearch): Promise<LoadedPlugin<ProvisionerFactory<unknown>>> {
  const given = search.registry?.provisioners?.[name];
  if (given) return { factory: checkApiVersion("provisioner", name, "the registry", given) };
  return (await importPlugin("provisioner", name, search)) as LoadedPlugin<ProvisionerFactory<unknown>>;
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
      const module = (await import(url)) as Record<string, unknown>;
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
    const plugin = (factory as (init: unknown) => Record<string, unknown>)(init);
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

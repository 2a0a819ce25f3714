import { pathToFileURL } from "node:url";
import { KilnError } from "./errors.js";
import type { DriverFactory, ProvisionerFactory } from "./types.js";

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

export async function loadDriverFactory(name: string, search: PluginSearch): Promise<DriverFactory<unknown>> {
  const given = search.registry?.drivers?.[name];
  if (given) return given;
  return (await importPlugin("driver", name, search)) as DriverFactory<unknown>;
}

export async function loadProvisionerFactory(name: string, search: PluginSearch): Promise<ProvisionerFactory<unknown>> {
  const given = search.registry?.provisioners?.[name];
  if (given) return given;
  return (await importPlugin("provisioner", name, search)) as ProvisionerFactory<unknown>;
}

async function importPlugin(kind: PluginKind, name: string, search: PluginSearch): Promise<unknown> {
  const candidates = packageCandidates(kind, name);
  for (const specifier of candidates) {
    for (const base of search.from) {
      const url = await tryResolve(specifier, base);
      if (!url) continue;
      const module = (await import(url)) as Record<string, unknown>;
      return checkShape(kind, name, specifier, module);
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

/** A plugin package default-exports its factory. */
function checkShape(kind: PluginKind, name: string, specifier: string, module: Record<string, unknown>): unknown {
  const factory = module.default;
  if (typeof factory !== "function") {
    throw new KilnError("E_PLUGIN_SHAPE", `package ${specifier} does not default-export a ${kind} factory`, {
      hint: `export default define${kind === "driver" ? "Driver" : "Provisioner"}(…) from @kiln/core`,
    });
  }
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

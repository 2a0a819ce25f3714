import { readdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { KilnError, type KilnErrorCode, type KilnErrorOptions } from "./errors.js";
import { type DriverFactory, PLUGIN_API_KEY, PLUGIN_API_VERSION, type PluginInit, type ProvisionerFactory } from "./types.js";

import type { PluginKind } from "./plugin-init.js";

export type { PluginKind } from "./plugin-init.js";

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
    throw new PluginProblem("not-a-plugin-name", notFoundCode(kind), `${kind} "${name}" is not a plugin name`, {
      hint: `name an installed package (kiln-${kind}-foo, @acme/kiln-${kind}-foo), or declare a plugin of this project under plugins: { ${kind}s: { foo: ./plugins/foo.mjs } }`,
    });
  }
  if (name.startsWith("@")) return [name];
  return [`@kiln/${kind}-${name}`, `kiln-${kind}-${name}`, name];
}

/**
 * The plugins Kiln publishes, by the name a bake file uses: a hint for one that is not installed names its package. Any other
 * name gets no install command: a package named after a typo could be anyone's.
 */
export const FIRST_PARTY_PLUGINS: Readonly<Record<PluginKind, Readonly<Record<string, string>>>> = {
  driver: {
    docker: "@kiln/driver-docker",
    ec2: "@kiln/driver-ec2",
    lxc: "@kiln/driver-lxc",
    vagrant: "@kiln/driver-vagrant",
    chroot: "@kiln/driver-chroot",
  },
  provisioner: {
    shell: "@kiln/provisioner-shell",
    file: "@kiln/provisioner-file",
    ansible: "@kiln/provisioner-ansible",
    puppet: "@kiln/provisioner-puppet",
    chef: "@kiln/provisioner-chef",
  },
};

/**
 * What became of resolving a plugin name: `project-code` is a plugin of the project (`plugins:`), not loaded; the others
 * after `ok` say why it cannot be used.
 */
export type PluginStatus =
  | "ok"
  | "project-code"
  | "not-installed"
  | "not-a-plugin-name"
  | "refused"
  | "cannot-load"
  | "wrong-shape"
  | "other-core"
  | "fails-to-start";

/** Where a plugin was found, as far as loading got before it failed. */
type PluginOrigin = Pick<LoadedPlugin<unknown>, "package" | "path" | "apiVersion">;

/** A plugin that cannot be used: a KilnError (exit 2) that also says which kind of problem it is and what was found. */
class PluginProblem extends KilnError {
  constructor(
    readonly status: Exclude<PluginStatus, "ok" | "project-code">,
    code: KilnErrorCode,
    message: string,
    options: KilnErrorOptions & { origin?: PluginOrigin } = {},
  ) {
    super(code, message, options);
    this.origin = options.origin ?? {};
  }
  origin: PluginOrigin;
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
  /** Directory of the package it came from. */
  path?: string;
  /** The plugin API version its factory is stamped with by `defineDriver`/`defineProvisioner`; undefined: not stamped. */
  apiVersion?: number;
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
    throw new PluginProblem("refused", "E_CONFIG", `${kind} "${name}" is declared under plugins: with a file that was refused`, {
      hint: "see the problem reported at plugins:",
    });
  if (!search.runProjectCode) return { factory: standIn(kind, name, path), local: { path, loaded: false } };
  const module = await importModule(pathToFileURL(path).href, `${kind} "${name}" (${path})`, { path });
  const apiVersion = stampOf(module.default);
  const origin = { path, ...(apiVersion === undefined ? {} : { apiVersion }) };
  return { factory: checkShape(kind, name, path, module, origin), local: { path, loaded: true }, ...origin };
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
async function importModule(url: string, what: string, origin: PluginOrigin): Promise<Record<string, unknown>> {
  try {
    return (await import(url)) as Record<string, unknown>;
  } catch (error) {
    throw new PluginProblem("cannot-load", "E_PLUGIN_SHAPE", `cannot load ${what}: ${firstLine(error)}`, {
      hint: "reinstall the package, or fix the module",
      cause: error,
      origin,
    });
  }
}

function firstLine(error: unknown): string {
  return (error as Error | undefined)?.message?.split("\n")[0] ?? String(error);
}

function notFoundCode(kind: PluginKind): KilnErrorCode {
  return kind === "driver" ? "E_DRIVER_NOT_FOUND" : "E_PROVISIONER_NOT_FOUND";
}

async function importPlugin(kind: PluginKind, name: string, search: PluginSearch): Promise<LoadedPlugin<unknown>> {
  const candidates = packageCandidates(kind, name);
  for (const specifier of candidates) {
    for (const base of search.from) {
      const url = await tryResolve(specifier, base);
      if (!url) continue;
      const found = await packageOf(url);
      const located: PluginOrigin = found ? { package: found.package, path: found.dir } : { path: fileURLToPath(url) };
      const module = await importModule(url, `package ${specifier}`, located);
      const apiVersion = stampOf(module.default);
      const origin = { ...located, ...(apiVersion === undefined ? {} : { apiVersion }) };
      return { factory: checkShape(kind, name, specifier, module, origin), ...origin };
    }
  }
  throw new PluginProblem("not-installed", notFoundCode(kind), `${kind} "${name}" not found (looked for ${candidates.join(", ")})`, {
    hint: await notFoundHint(kind, name, search),
  });
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

/** The nearest package.json above a resolved module: the package it belongs to, and its directory. */
async function packageOf(url: string): Promise<{ package: PluginPackage; dir: string } | undefined> {
  if (!url.startsWith("file:")) return undefined;
  for (let dir = dirname(fileURLToPath(url)); ; dir = dirname(dir)) {
    const found = await readManifest(dir);
    if (found) return { package: found, dir };
    if (dirname(dir) === dir) return undefined;
  }
}

/** Name and version from `dir/package.json`; undefined when there is none, it is not JSON or names no package. */
async function readManifest(dir: string): Promise<PluginPackage | undefined> {
  const text = await readFile(join(dir, "package.json"), "utf8").catch(() => undefined);
  if (text === undefined) return undefined;
  let manifest: { name?: unknown; version?: unknown } | null;
  try {
    manifest = JSON.parse(text) as { name?: unknown; version?: unknown } | null;
  } catch {
    return undefined;
  }
  if (typeof manifest?.name !== "string") return undefined;
  return { name: manifest.name, version: typeof manifest.version === "string" ? manifest.version : "0.0.0" };
}

/** The plugin API version a factory is stamped with, if it is a number. */
function stampOf(factory: unknown): number | undefined {
  if (typeof factory !== "function") return undefined;
  const stamped = (factory as unknown as Record<string, unknown>)[PLUGIN_API_KEY];
  return typeof stamped === "number" ? stamped : undefined;
}

/** A factory stamped by `defineDriver`/`defineProvisioner` of another core than this one speaks another contract. */
function checkApiVersion<F>(kind: PluginKind, name: string, from: string, factory: F, origin: PluginOrigin = {}): F {
  const stamped = (factory as Record<string, unknown>)[PLUGIN_API_KEY];
  if (stamped === undefined || stamped === PLUGIN_API_VERSION) return factory;
  const newer = typeof stamped === "number" && stamped > PLUGIN_API_VERSION;
  throw new PluginProblem(
    "other-core",
    "E_PLUGIN_SHAPE",
    `${kind} "${name}" from ${from} was built for Kiln plugin API ${String(stamped)}; this Kiln speaks version ${PLUGIN_API_VERSION}`,
    {
      hint: newer
        ? "upgrade Kiln (@kiln/cli and @kiln/core) to a version that supports it"
        : `upgrade the plugin to a version built for @kiln/core with plugin API ${PLUGIN_API_VERSION}`,
      origin,
    },
  );
}

/** A plugin package default-exports its factory. */
function checkShape(kind: PluginKind, name: string, specifier: string, module: Record<string, unknown>, origin: PluginOrigin): unknown {
  const factory = module.default;
  if (typeof factory !== "function") {
    throw new PluginProblem("wrong-shape", "E_PLUGIN_SHAPE", `package ${specifier} does not default-export a ${kind} factory`, {
      hint: `export default define${kind === "driver" ? "Driver" : "Provisioner"}(…) from @kiln/core`,
      origin,
    });
  }
  checkApiVersion(kind, name, `package ${specifier}`, factory, origin);
  return (init: unknown) => {
    let plugin: Record<string, unknown>;
    try {
      plugin = (factory as (init: unknown) => Record<string, unknown>)(init);
    } catch (error) {
      if (error instanceof KilnError) throw error;
      throw new PluginProblem(
        "fails-to-start",
        "E_PLUGIN_SHAPE",
        `${kind} "${name}" from ${specifier} failed to start: ${firstLine(error)}`,
        {
          cause: error,
          origin,
        },
      );
    }
    const missing = REQUIRED_MEMBERS[kind].filter((member) => typeof plugin?.[member] !== "function");
    // A schema is a Standard Schema: something with a validate function under "~standard".
    const schema = plugin?.schema as { "~standard"?: { validate?: unknown } } | undefined;
    const schemaOk = typeof schema?.["~standard"]?.validate === "function";
    if (missing.length > 0 || !schemaOk) {
      throw new PluginProblem("wrong-shape", "E_PLUGIN_SHAPE", `${kind} "${name}" from ${specifier} is incomplete`, {
        hint: `it must have ${[...REQUIRED_MEMBERS[kind], "schema (a Standard Schema)"].join(", ")}; missing: ${[...missing, ...(schemaOk ? [] : ["schema"])].join(", ")}`,
        origin,
      });
    }
    return plugin;
  };
}

/** A plugin package found in a `node_modules` directory, by the name a bake file would use for it. */
export interface InstalledPlugin {
  kind: PluginKind;
  /** `docker` for `@kiln/driver-docker` and `kiln-driver-docker`; a scoped third-party package is named in full. */
  name: string;
  package: PluginPackage;
  /** The package's directory. */
  path: string;
}

/** `@kiln/driver-docker` → docker, `kiln-provisioner-shell` → shell, `@acme/kiln-driver-qemu` as written; other names: none. */
export function pluginNameOf(packageName: string): { kind: PluginKind; name: string } | undefined {
  for (const kind of ["driver", "provisioner"] as const) {
    const firstParty = new RegExp(`^@kiln/${kind}-(.+)$`).exec(packageName);
    if (firstParty?.[1]) return { kind, name: firstParty[1] };
    const unscoped = new RegExp(`^kiln-${kind}-(.+)$`).exec(packageName);
    if (unscoped?.[1]) return { kind, name: unscoped[1] };
    if (new RegExp(`^@[^/]+/kiln-${kind}-.+$`).test(packageName)) return { kind, name: packageName };
  }
  return undefined;
}

/**
 * The plugin packages installed where `from` resolves packages: every `node_modules` from each directory up to the root,
 * as Node looks. Only package.json files are read; nothing is imported.
 */
export async function findInstalledPlugins(from: string[]): Promise<InstalledPlugin[]> {
  const found: InstalledPlugin[] = [];
  const seen = new Set<string>();
  for (const base of from) {
    for (let dir = base.startsWith("file:") ? fileURLToPath(base) : base; ; dir = dirname(dir)) {
      const modules = join(dir, "node_modules");
      if (!seen.has(modules)) {
        seen.add(modules);
        found.push(...(await pluginsIn(modules)));
      }
      if (dirname(dir) === dir) break;
    }
  }
  return found;
}

async function pluginsIn(modules: string): Promise<InstalledPlugin[]> {
  const found: InstalledPlugin[] = [];
  const entries = await readdir(modules).catch(() => [] as string[]);
  const packageNames: string[] = [];
  for (const entry of entries) {
    if (entry.startsWith("@")) {
      const scoped = await readdir(join(modules, entry)).catch(() => [] as string[]);
      packageNames.push(...scoped.map((inner) => `${entry}/${inner}`));
    } else packageNames.push(entry);
  }
  for (const packageName of packageNames) {
    const plugin = pluginNameOf(packageName);
    if (!plugin) continue;
    const path = join(modules, ...packageName.split("/"));
    const manifest = await readManifest(path);
    found.push({ ...plugin, package: manifest ?? { name: packageName, version: "0.0.0" }, path });
  }
  return found;
}

/**
 * What to tell someone whose plugin name resolved to nothing: the package of a first-party plugin, that the name belongs
 * to the other kind, a close name that exists, or else how third-party plugins are named — never an install command built
 * from what was typed (a package named after a typo could be anyone's).
 */
async function notFoundHint(kind: PluginKind, name: string, search: PluginSearch): Promise<string> {
  const firstParty = FIRST_PARTY_PLUGINS[kind][name];
  if (firstParty) return `install it: npm install -D ${firstParty}`;
  const installed = await findInstalledPlugins(search.from);
  const known = (of: PluginKind) =>
    new Set([
      ...Object.keys(FIRST_PARTY_PLUGINS[of]),
      ...installed.filter((plugin) => plugin.kind === of).map((plugin) => plugin.name),
      ...Object.keys((of === "driver" ? search.registry?.drivers : search.registry?.provisioners) ?? {}),
      ...Object.keys((of === "driver" ? search.local?.drivers : search.local?.provisioners) ?? {}),
    ]);
  const other: PluginKind = kind === "driver" ? "provisioner" : "driver";
  if (known(other).has(name)) {
    return kind === "driver"
      ? `${name} is a provisioner, not a driver: use it as a step under provision: (- ${name}: {…})`
      : `${name} is a driver, not a provisioner: name it as an image's driver (driver: ${name})`;
  }
  const installedNames = new Set(installed.filter((plugin) => plugin.kind === kind).map((plugin) => plugin.name));
  const close = closeNames(name, known(kind));
  if (close.length > 0) {
    const notInstalled = close.filter((candidate) => !installedNames.has(candidate) && FIRST_PARTY_PLUGINS[kind][candidate]);
    const install = notInstalled.map((candidate) => `npm install -D ${FIRST_PARTY_PLUGINS[kind][candidate]}`);
    return `did you mean ${close.join(" or ")}?${install.length > 0 ? ` (not installed: ${install.join("; ")})` : ""}`;
  }
  return `a third-party ${kind} is published as kiln-${kind}-<name>; check the name or install the package that provides it`;
}

/** Known names within edit distance 2 of `name` (and closer than its own length), nearest first, at most three. */
function closeNames(name: string, known: Iterable<string>): string[] {
  return [...known]
    .map((candidate) => ({ candidate, distance: editDistance(name, candidate) }))
    .filter(({ candidate, distance }) => candidate !== name && distance <= 2 && distance < name.length)
    .sort((a, b) => a.distance - b.distance || a.candidate.localeCompare(b.candidate))
    .slice(0, 3)
    .map(({ candidate }) => candidate);
}

/** Optimal string alignment distance: insertions, deletions, substitutions and swaps of neighbours (`dokcer` → `docker` is 1). */
function editDistance(a: string, b: string): number {
  // Names longer than a package name allows are not compared: the table would be large for nothing.
  if (Math.abs(a.length - b.length) > 2 || a.length > 214 || b.length > 214) return Number.POSITIVE_INFINITY;
  const rows = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number) => rows[i]?.[j] ?? Number.POSITIVE_INFINITY;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, at(i - 2, j - 2) + 1);
      (rows[i] as number[])[j] = best;
    }
  }
  return at(a.length, b.length);
}

/** What resolving one plugin name gives, for `kiln plugins`: where it came from and, if it cannot be used, why and the fix. */
export interface PluginReport {
  kind: PluginKind;
  name: string;
  status: PluginStatus;
  package?: PluginPackage;
  /** The package's directory, or the project's file for a plugin of the project. */
  path?: string;
  /** The plugin API version the factory is stamped with; undefined: not stamped (not made with defineDriver/defineProvisioner). */
  apiVersion?: number;
  problem?: { code: KilnErrorCode; message: string; hint?: string };
}

/**
 * Resolves a plugin as a bake would and starts its factory once (so a wrong shape shows), without running any of its
 * steps. A plugin of the project (`plugins:`) is imported only if `search.runProjectCode`.
 */
export async function inspectPlugin(kind: PluginKind, name: string, search: PluginSearch, init: PluginInit): Promise<PluginReport> {
  let loaded: LoadedPlugin<(init: PluginInit) => unknown> | undefined;
  try {
    loaded = kind === "driver" ? await loadDriverFactory(name, search) : await loadProvisionerFactory(name, search);
    if (!loaded.local || loaded.local.loaded) loaded.factory(init);
    const origin = { ...originOf(loaded), ...(loaded.local ? { path: loaded.local.path } : {}) };
    return { kind, name, status: loaded.local && !loaded.local.loaded ? "project-code" : "ok", ...origin };
  } catch (error) {
    const problem =
      error instanceof PluginProblem
        ? error
        : new PluginProblem("fails-to-start", "E_PLUGIN_SHAPE", `${kind} "${name}" failed to start: ${firstLine(error)}`);
    const origin = { ...(loaded ? originOf(loaded) : {}), ...problem.origin };
    return {
      kind,
      name,
      status: problem.status,
      ...origin,
      problem: { code: problem.code, message: problem.message, ...(problem.hint ? { hint: problem.hint } : {}) },
    };
  }
}

function originOf(loaded: LoadedPlugin<unknown>): PluginOrigin {
  return {
    ...(loaded.package ? { package: loaded.package } : {}),
    ...(loaded.path ? { path: loaded.path } : {}),
    ...(loaded.apiVersion === undefined ? {} : { apiVersion: loaded.apiVersion }),
  };
}

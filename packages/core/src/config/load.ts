import { stat } from "node:fs/promises";
import { basename, dirname, relative, resolve } from "node:path";
import { parseDuration } from "../duration.js";
import { type LoadedPlugin, loadDriverFactory, loadProvisionerFactory, type PluginPackage, type PluginSearch } from "../plugins.js";
import { type PluginKind, pluginInit } from "../plugin-init.js";
import { type Diagnostic, KilnError, toKilnError } from "../errors.js";
import { confinedPath, OutsideProject } from "./confine.js";
import { createRedactor, interpolate, resolveVariables, type VariableInputs } from "../variables.js";
import type { Driver, ExposedOption, HostAccess, HostPath, Logger, PreflightProblem, Provisioner, VariableValue } from "../types.js";
import { Diagnostics, unrecognizedKeys } from "./diagnostics.js";
import { readBakeFile } from "./read.js";
import { checkReferences, dependencyOrder } from "./references.js";
import { expandSteps, INVALID, loadPlugin, splitCommonStepOptions, validate } from "./steps.js";
import { normalizeRuntimeOnly, type RuntimeOnly } from "../verify/runtime-only.js";
import { verifyScenarios } from "../verify/run.js";
import { bakeFileSchema, IMAGE_KEYS, type BakeFile } from "./schema.js";
import type { VerifyScenario } from "./verify-schema.js";
import { formatPath, type PathSegment } from "./positions.js";

export interface ProvisionStep {
  /** Position in the image's provision list, after `use:` lists are inserted. */
  index: number;
  /** The `steps:` list(s) it came from, e.g. `hardening`. */
  via?: string;
  /** Provisioner name as written, e.g. `shell`. */
  name: string;
  provisioner: Provisioner<unknown>;
  /** The package the provisioner came from (undefined for plugins given directly and plugins of the project). */
  package?: PluginPackage;
  options: unknown;
  timeoutMs?: number;
  pauseBeforeMs?: number;
  maxRetries: number;
}

/** One image, validated, with its plugins loaded and variables filled in. */
export interface ImageSpec {
  name: string;
  driverName: string;
  driver: Driver<unknown>;
  /** The package the driver came from (undefined for plugins given directly and plugins of the project). */
  driverPackage?: PluginPackage;
  driverOptions: unknown;
  from?: string;
  provision: ProvisionStep[];
  /** Start-up scenarios to verify the artefact with (empty: no verify). */
  verify: (VerifyScenario & { name: string })[];
  runtimeOnly?: RuntimeOnly;
  tags: string[];
  labels: Record<string, string>;
  timeoutMs?: number;
  /** Host directories outside the project the bake may read and write (the image's `allow_host_paths` and `--allow-path`). */
  allowedPaths: string[];
  /** `name@version` of the driver's and provisioners' packages (plugins given directly are not listed): part of the bake key. */
  plugins: string[];
}

export interface Project {
  /** Scopes artefacts by name (`dev.kiln.project`): `project:` in the bake file, else its directory's name. */
  name: string;
  /** Absolute path of the bake file. */
  file: string;
  /** Directory relative paths resolve from. */
  dir: string;
  variables: Record<string, VariableValue>;
  /** Images in dependency order: every parent before its children. */
  images: ImageSpec[];
  redact: (text: string) => string;
  /** Where plugins log outside a bake (fleet commands), redacted. */
  log: Logger;
  /** What a reviewer should know that is not a problem: plugins of the project that run code, host access the file asks for. */
  notices: Diagnostic[];
}

export interface LoadOptions {
  variables?: VariableInputs;
  /** Where plugins resolve from besides the bake file's directory. */
  plugins?: Partial<PluginSearch>;
  /**
   * Load the plugins the bake file declares under `plugins:` — code of the project. Default false: loading runs nothing but
   * installed packages, so an untrusted bake file can be validated; `kiln build` and the commands that bake or read
   * artefacts say true.
   */
  runProjectCode?: boolean;
  /** Receives plugins' log lines outside a bake (redacted). Default: dropped. */
  log?: Logger;
  /** Host directories outside the project every image may read and write (`kiln build --allow-path`). */
  allowPaths?: string[];
}

const SILENT: Logger = { info: () => {}, warn: () => {}, debug: () => {} };

/** Reads, validates and resolves a bake file. Throws a KilnError (exit code 2) listing every problem at once. */
export async function loadProject(file: string, options: LoadOptions = {}): Promise<Project> {
  const path = resolve(file);
  const dir = dirname(path);
  const fromHere = relative(process.cwd(), path);
  const shown = fromHere && !fromHere.startsWith("..") ? fromHere : path;
  const { data, positions } = await readBakeFile(path, shown);
  const diagnostics = new Diagnostics(shown, positions);

  tooMany(data, diagnostics);
  diagnostics.throwIfAny();
  const parsed = bakeFileSchema.safeParse(data);
  if (!parsed.success) diagnostics.addSchemaIssues([], parsed.error.issues);
  diagnostics.throwIfAny();
  const bakeFile = (parsed as { data: BakeFile }).data;

  // From here on every problem is collected, so one run of `kiln validate` reports them all.
  checkReferences(bakeFile, diagnostics);
  const order = dependencyOrder(bakeFile, diagnostics);
  const { values: variables, problems } = await resolveVariables(bakeFile.variables, options.variables ?? {}, dir);
  // Values are filled in from here on: no problem reported may show a secret (a driver: "{{ token }}" included).
  const redact = createRedactor(variables);
  diagnostics.redact = redact;
  for (const problem of problems) {
    if (problem.declared) diagnostics.add(["variables", problem.name], problem.message, { atKey: true });
    else diagnostics.addGeneral(problem.message, "declare it under variables:, or check its spelling");
  }
  const local = await localPlugins(bakeFile, dir, diagnostics);
  const search: PluginSearch = {
    from: [dir, ...(options.plugins?.from ?? [])],
    ...pluginRegistry(options),
    local,
    runProjectCode: options.runProjectCode ?? false,
  };
  const log = redactedLogger(options.log ?? SILENT, redact);
  const loaded = {
    driver: once((name: string) => loadDriverFactory(name, search)),
    provisioner: once((name: string) => loadProvisionerFactory(name, search)),
  };
  const images: ImageSpec[] = [];
  for (const name of order) {
    const resolution = { loaded, dir, log, diagnostics, allowPaths: options.allowPaths ?? [] };
    // A plugin's bug (a hook that throws) is reported at its image, and the other images are still checked.
    const image = await resolveImage(name, bakeFile, variables, resolution).catch((error: unknown) => {
      const hint = error instanceof KilnError && error.hint ? error.hint : "a plugin of this image has a bug: update or report it";
      diagnostics.add(["images", name], `checking this image failed: ${(error as Error)?.message ?? String(error)}`, { atKey: true, hint });
      return undefined;
    });
    if (image) images.push(image);
  }
  checkParents(images, bakeFile, diagnostics);
  diagnostics.throwIfAny();
  const name = bakeFile.project ?? (basename(dir).replace(/[^A-Za-z0-9_.-]/g, "-") || "kiln");
  return { name, file: path, dir, variables, images, redact, log, notices: diagnostics.notes };
}

/** Where a bake file names a plugin: an image's `driver:` or a provision step (possibly in a `steps:` list). */
export interface PluginUse {
  kind: PluginKind;
  name: string;
  image: string;
  /** `images.web.driver`, `images.web.provision[0].shell`, `steps.base[1].file`. */
  path: string;
  /** The step lists the step came through (`hardening → base`). */
  via?: string;
  line?: number;
  column?: number;
}

export interface PluginUses {
  /** Absolute path of the bake file. */
  file: string;
  /** A TypeScript or JavaScript bake file is code: it is not run, so the plugins it names are not known. */
  code: boolean;
  uses: PluginUse[];
  /** Plugins of the project (`plugins:`): the file inside the project, or null when it was refused. */
  local: { kind: PluginKind; name: string; path: string | null; line?: number; column?: number }[];
  /** Problems found on the way (a `plugins:` file outside the project), with their places. */
  problems: Diagnostic[];
}

/**
 * The plugins a bake file names and where, read without running anything: not a TypeScript bake file, not a plugin of the
 * project, not a plugin package. Best effort on a file with other problems (`kiln validate` reports those); a name set
 * through a variable (`driver: "{{ d }}"`) is left out.
 */
export async function listPluginUses(file: string): Promise<PluginUses> {
  const path = resolve(file);
  const fromHere = relative(process.cwd(), path);
  const shown = fromHere && !fromHere.startsWith("..") ? fromHere : path;
  if (/\.[mc]?[jt]s$/.test(path)) return { file: path, code: true, uses: [], local: [], problems: [] };
  const { data, positions } = await readBakeFile(path, shown);
  const diagnostics = new Diagnostics(shown, positions);
  const root = isRecord(data) ? data : {};
  const lists = Object.fromEntries(
    Object.entries(isRecord(root.steps) ? root.steps : {})
      .filter((entry): entry is [string, unknown[]] => Array.isArray(entry[1]))
      .map(([name, steps]) => [name, steps.map((step) => (isRecord(step) ? step : {}))]),
  );
  const uses: PluginUse[] = [];
  const named = (name: unknown): name is string => typeof name === "string" && !name.includes("{{");
  const at = (use: Omit<PluginUse, "path" | "line" | "column">, segments: PathSegment[], atKey: boolean): PluginUse => {
    const position = atKey ? positions.keyAt(segments) : positions.valueAt(segments);
    return { ...use, path: formatPath(segments), ...(position ? { line: position.line, column: position.column } : {}) };
  };
  for (const [image, definition] of Object.entries(isRecord(root.images) ? root.images : {})) {
    if (!isRecord(definition)) continue;
    if (named(definition.driver)) {
      uses.push(at({ kind: "driver", name: definition.driver, image }, ["images", image, "driver"], false));
    }
    const provision = Array.isArray(definition.provision) ? definition.provision.map((step) => (isRecord(step) ? step : {})) : [];
    // Problems with the lists themselves (an unknown `use:`) are kiln validate's to report, not a plugin's.
    const listProblems = new Diagnostics(shown, positions);
    for (const { step, path: stepAt, via } of expandSteps(provision, ["images", image, "provision"], lists, listProblems)) {
      const name = Object.keys(step)[0];
      if (!named(name)) continue;
      uses.push(at({ kind: "provisioner", name, image, ...(via ? { via } : {}) }, [...stepAt, name], true));
    }
  }
  const declared = isRecord(root.plugins) ? root.plugins : {};
  const onlyFiles = (entries: unknown) =>
    Object.fromEntries(
      Object.entries(isRecord(entries) ? entries : {}).filter((entry): entry is [string, string] => typeof entry[1] === "string"),
    );
  const bakeFile = { plugins: { drivers: onlyFiles(declared.drivers), provisioners: onlyFiles(declared.provisioners) } } as BakeFile;
  const found = await localPlugins(bakeFile, dirname(path), diagnostics);
  const local: PluginUses["local"] = [];
  for (const [kinds, kind] of [
    ["drivers", "driver"],
    ["provisioners", "provisioner"],
  ] as const) {
    for (const [name, file] of Object.entries(found[kinds])) {
      const position = positions.valueAt(["plugins", kinds, name]);
      local.push({ kind, name, path: file, ...(position ? { line: position.line, column: position.column } : {}) });
    }
  }
  return { file: path, code: false, uses, local, problems: diagnostics.items };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** The `plugins:` map with each file checked to be inside the project (it would run as the user who bakes). */
async function localPlugins(bakeFile: BakeFile, dir: string, diagnostics: Diagnostics): Promise<NonNullable<PluginSearch["local"]>> {
  const local = { drivers: {} as Record<string, string | null>, provisioners: {} as Record<string, string | null> };
  for (const kind of ["drivers", "provisioners"] as const) {
    for (const [name, file] of Object.entries(bakeFile.plugins?.[kind] ?? {})) {
      try {
        local[kind][name] = await confinedPath(dir, file);
      } catch (error) {
        if (!(error instanceof OutsideProject)) throw error;
        diagnostics.add(["plugins", kind, name], error.message, { hint: "a plugin of the project is a file inside its directory" });
        local[kind][name] = null;
      }
    }
  }
  return local;
}

/** More images, step lists or variables than this is no bake file a person maintains; refused before any is checked. */
const MAX_ENTRIES = 1000;

function tooMany(data: unknown, diagnostics: Diagnostics): void {
  if (data === null || typeof data !== "object") return;
  for (const section of ["images", "steps", "variables"]) {
    const entries = (data as Record<string, unknown>)[section];
    const count = entries !== null && typeof entries === "object" ? Object.keys(entries).length : 0;
    if (count > MAX_ENTRIES)
      diagnostics.add([section], `${count} entries: at most ${MAX_ENTRIES}`, {
        atKey: true,
        hint: "split the project into several bake files",
      });
  }
}

/** `load` called once per name; later calls share the first answer (or failure). */
function once<T>(load: (name: string) => Promise<T>): (name: string) => Promise<T> {
  const answers = new Map<string, Promise<T>>();
  return (name) => {
    let answer = answers.get(name);
    if (!answer) {
      answer = load(name);
      answers.set(name, answer);
    }
    return answer;
  };
}

function redactedLogger(log: Logger, redact: (text: string) => string): Logger {
  return { info: (text) => log.info(redact(text)), warn: (text) => log.warn(redact(text)), debug: (text) => log.debug(redact(text)) };
}

interface Resolution {
  /** Plugins by name, resolved once per bake file however many images name them. */
  loaded: {
    driver: (name: string) => ReturnType<typeof loadDriverFactory>;
    provisioner: (name: string) => ReturnType<typeof loadProvisionerFactory>;
  };
  dir: string;
  log: Logger;
  diagnostics: Diagnostics;
  allowPaths: string[];
}

function pluginRegistry(options: LoadOptions): Pick<PluginSearch, "registry"> {
  return options.plugins?.registry ? { registry: options.plugins.registry } : {};
}

async function resolveImage(
  name: string,
  bakeFile: BakeFile,
  variables: Record<string, VariableValue>,
  resolution: Resolution,
): Promise<ImageSpec | undefined> {
  const { dir, log, diagnostics } = resolution;
  const allowedPaths = [...new Set([...(bakeFile.images[name]?.allow_host_paths ?? []), ...resolution.allowPaths])];
  const confinement: Confinement = { dir, allowedPaths, hostAccess: bakeFile.images[name]?.host_access ?? false, diagnostics };
  for (const [index, allowed] of (bakeFile.images[name]?.allow_host_paths ?? []).entries()) {
    diagnostics.note(["images", name, "allow_host_paths", index], `steps of this image may read and write ${allowed}, outside the project`);
  }
  const image = interpolate(bakeFile.images[name], variables);
  if (!image) return undefined;
  const at = ["images", name];
  const ownOptions = Object.fromEntries(Object.entries(image).filter(([key]) => !IMAGE_KEYS.has(key)));
  // Project-wide options of this driver (`defaults: { docker: … }`), under the image's own.
  const defaults = (interpolate(bakeFile.defaults?.[image.driver], variables) ?? {}) as Record<string, unknown>;
  const driverInput = { ...defaults, ...ownOptions };
  const fromDefaults = (key: PropertyKey) => typeof key === "string" && key in defaults && !(key in ownOptions);
  if (image.from !== undefined && "source" in driverInput) {
    diagnostics.add([...at, "source"], "an image has either `from:` or `source:`, not both", { atKey: true });
  } else if (image.from === undefined && !("source" in driverInput)) {
    diagnostics.add(at, "no `source:` — say what the image starts from", {
      hint: 'e.g. source: "debian:bookworm", source: { debootstrap: { suite: bookworm } }, or from: <another image>',
    });
  }

  const driver = await loadPlugin(() => resolution.loaded.driver(image.driver), [...at, "driver"], diagnostics);
  noteLocal(driver, [...at, "driver"], diagnostics);
  const instance = await loadPlugin(
    async () => startPlugin("driver", image.driver, () => driver?.factory(pluginInit("driver", image.driver, dir, log))),
    [...at, "driver"],
    diagnostics,
  );
  const plugin = { kind: "driver" as const, name: image.driver, at: [...at, "driver"] };
  const optionsAt = { image: at, defaults: ["defaults", image.driver], fromDefaults };
  const driverOptions = instance ? await validateOptions(plugin, instance.schema, driverInput, optionsAt, diagnostics) : undefined;
  const plugins = new Set<string>(driver?.package ? [packageId(driver.package)] : []);
  refuseExposedSecrets(instance?.exposedOptions, driverInput, at, variables, diagnostics);
  for (const [index, tag] of image.tags.entries()) {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: a tag is one line of printable text.
    const problem = /[\u0000-\u001f\u007f]/.test(tag) ? "a tag is one line of printable text" : instance?.checkTag?.(tag);
    if (problem) diagnostics.add([...at, "tags", index], `tag "${tag}" cannot be used: ${problem}`);
  }
  if (instance && driverOptions !== INVALID)
    await confine(instance.hostPaths?.(driverOptions), instance.hostAccess?.(driverOptions), at, confinement);
  if (instance?.preflight && driverOptions !== INVALID) {
    await preflight(() => instance.preflight?.(driverOptions) ?? [], at, [...at, "driver"], diagnostics);
  }

  const provision: ProvisionStep[] = [];
  for (const { step, path, via } of expandSteps(
    image.provision,
    [...at, "provision"],
    interpolate(bakeFile.steps, variables),
    diagnostics,
  )) {
    const [stepName, rawOptions] = Object.entries(step)[0] as [string, Record<string, unknown>];
    const stepPath = [...path, stepName];
    const loaded = await loadPlugin(() => resolution.loaded.provisioner(stepName), stepPath, diagnostics, true);
    noteLocal(loaded, stepPath, diagnostics);
    const provisioner = await loadPlugin(
      async () => startPlugin("provisioner", stepName, () => loaded?.factory(pluginInit("provisioner", stepName, dir, log))),
      stepPath,
      diagnostics,
      true,
    );
    if (loaded?.package) plugins.add(packageId(loaded.package));
    const { common, rest } = splitCommonStepOptions(rawOptions, stepPath, diagnostics);
    const options = provisioner
      ? await validateOptions({ kind: "provisioner", name: stepName, at: stepPath }, provisioner.schema, rest, stepPath, diagnostics)
      : undefined;
    refuseExposedSecrets(provisioner?.exposedOptions, rest, stepPath, variables, diagnostics);
    if (provisioner && options !== INVALID) await confine(provisioner.hostPaths?.(options), [], stepPath, confinement);
    if (provisioner?.preflight && options !== INVALID) {
      const target = { driver: image.driver, connectionKinds: instance?.connectionKinds };
      await preflight(() => provisioner.preflight?.(options, target) ?? [], stepPath, stepPath, diagnostics);
    }
    if (provisioner && options !== INVALID) {
      provision.push({
        index: provision.length,
        name: stepName,
        provisioner,
        ...(loaded?.package ? { package: loaded.package } : {}),
        options,
        ...(via ? { via } : {}),
        ...common,
      });
    }
  }
  const runtimeOnly = normalizeRuntimeOnly(image.runtime_only);
  for (const [index, name] of (runtimeOnly?.variables ?? []).entries()) {
    if (!Object.hasOwn(bakeFile.variables, name)) {
      const at2 = Array.isArray(image.runtime_only)
        ? [...at, "runtime_only", image.runtime_only.indexOf(name)]
        : [...at, "runtime_only", "variables", index];
      diagnostics.add(at2, `"${name}" is neither an absolute path nor a declared variable`, {
        hint: "paths start with /; variables must be declared under variables:",
      });
    }
  }
  for (const [index, scenario] of verifyScenarios(image.verify).entries()) {
    const where = Array.isArray(image.verify) ? [...at, "verify", index, "runtime"] : [...at, "verify", "runtime"];
    const support = instance?.runtimeSupport ?? {};
    if (scenario.runtime?.user_data !== undefined && !support.userData) {
      diagnostics.add([...where, "user_data"], `driver "${image.driver}" cannot inject cloud-init user-data`, {
        atKey: true,
        hint: "use env, files or boot_script",
      });
    }
    if (scenario.runtime?.boot_script !== undefined && !support.bootScript) {
      diagnostics.add([...where, "boot_script"], `driver "${image.driver}" cannot run a boot script`, {
        atKey: true,
        hint: "use env or files",
      });
    }
  }
  if (!instance || driverOptions === INVALID) return undefined;
  return {
    name,
    driverName: image.driver,
    driver: instance,
    ...(driver?.package ? { driverPackage: driver.package } : {}),
    driverOptions,
    ...(image.from !== undefined ? { from: image.from } : {}),
    provision,
    verify: verifyScenarios(image.verify),
    ...(runtimeOnly ? { runtimeOnly } : {}),
    tags: image.tags,
    labels: image.labels,
    ...(image.timeout !== undefined ? { timeoutMs: parseDuration(image.timeout) } : {}),
    plugins: [...plugins].sort(),
    allowedPaths,
  };
}

/**
 * An image builds on its parent's artefact: a Docker image cannot start from an AMI. Also, `dev.kiln.*` labels are Kiln's
 * provenance: a bake file may not set them.
 */
function checkParents(images: ImageSpec[], bakeFile: BakeFile, diagnostics: Diagnostics): void {
  const byName = new Map(images.map((image) => [image.name, image]));
  for (const image of images) {
    const parent = image.from === undefined ? undefined : byName.get(image.from);
    if (parent && parent.driverName !== image.driverName) {
      diagnostics.add(
        ["images", image.name, "from"],
        `"${image.from}" is baked by driver ${parent.driverName}; this image uses ${image.driverName}`,
        {
          hint: "an image builds on an artefact of its own driver",
        },
      );
    }
    for (const key of Object.keys(bakeFile.images[image.name]?.labels ?? {})) {
      if (key.startsWith("dev.kiln."))
        diagnostics.add(["images", image.name, "labels", key], `label "${key}" is Kiln's provenance`, {
          atKey: true,
          hint: "choose a key outside dev.kiln.",
        });
    }
  }
}

interface Confinement {
  dir: string;
  allowedPaths: string[];
  hostAccess: boolean;
  diagnostics: Diagnostics;
}

/**
 * Every host path a plugin's options name must be inside the project (after symlinks) or an allowed directory; host access
 * (volumes, privileged) needs `host_access: true`, and is noted for the reviewer either way.
 */
async function confine(
  paths: HostPath[] | undefined,
  access: HostAccess[] | undefined,
  at: PathSegment[],
  confinement: Confinement,
): Promise<void> {
  const { dir, allowedPaths, diagnostics } = confinement;
  for (const hostPath of paths ?? []) {
    try {
      const real = await confinedPath(dir, hostPath.value, allowedPaths);
      // A FIFO or a device as a source would hang the bake or never end: only files and directories are read.
      const info = hostPath.access === "read" ? await stat(real).catch(() => undefined) : undefined;
      if (info && !info.isFile() && !info.isDirectory())
        diagnostics.add([...at, ...hostPath.path], `${hostPath.value} is not a regular file or a directory`);
    } catch (error) {
      if (!(error instanceof OutsideProject)) throw error;
      diagnostics.add([...at, ...hostPath.path], `would ${hostPath.access} ${error.path}, which ${error.reason}`, {
        hint: "keep the files in the project, or allow the directory: allow_host_paths: [/dir] on the image (or kiln build --allow-path /dir)",
      });
    }
  }
  for (const grant of access ?? []) {
    if (confinement.hostAccess) diagnostics.note([...at, ...grant.path], `host access: ${grant.what}`);
    else {
      diagnostics.add([...at, ...grant.path], `${grant.what}: this gives the build access to this host`, {
        hint: "set host_access: true on the image if that is intended",
      });
    }
  }
}

/** A sensitive value in an option a plugin says is exposed (the image's config, a command line) is refused where it is written. */
function refuseExposedSecrets(
  exposed: readonly ExposedOption[] | undefined,
  options: Record<string, unknown>,
  at: PathSegment[],
  variables: Record<string, VariableValue>,
  diagnostics: Diagnostics,
): void {
  for (const { path, where } of exposed ?? []) {
    const value = path.reduce<unknown>(
      (item, key) =>
        item !== null && typeof item === "object" && Object.hasOwn(item, key) ? (item as Record<string, unknown>)[key] : undefined,
      options,
    );
    if (value === undefined) continue;
    for (const [name, variable] of Object.entries(variables)) {
      if (!variable.sensitive || !variable.value || !stringsIn(value).some((item) => item.includes(variable.value))) continue;
      diagnostics.add([...at, ...path], `sensitive variable "${name}" would be written into ${where}`, {
        hint: "give it at boot instead (verify.runtime env or files), or to commands through env:, which is never shown",
      });
    }
  }
}

function stringsIn(value: unknown): string[] {
  if (typeof value === "string") return [value];
  if (Array.isArray(value)) return value.flatMap(stringsIn);
  if (value !== null && typeof value === "object") return Object.values(value).flatMap(stringsIn);
  return [];
}

/** A factory given directly (`registry`) that throws is reported like a package's: at the plugin's position, not as a crash. */
async function startPlugin<T>(kind: PluginKind, name: string, start: () => T): Promise<T> {
  try {
    return start();
  } catch (error) {
    throw toKilnError(error, "E_PLUGIN_SHAPE", `${kind} "${name}" failed to start`);
  }
}

/** Options checked against a plugin's schema; a schema that throws is a problem of the plugin, reported where it is used. */
async function validateOptions(
  plugin: { kind: PluginKind; name: string; at: PathSegment[] },
  schema: Parameters<typeof validate>[0],
  input: unknown,
  at: PathSegment[] | DriverOptionsPlace,
  diagnostics: Diagnostics,
): Promise<unknown> {
  try {
    if (Array.isArray(at)) return await validate(schema, input, at, diagnostics);
    const result = await schema["~standard"].validate(input);
    if (!result.issues) return result.value;
    // A problem with an option the image took from `defaults:` is reported there, where the file says it.
    for (const issue of result.issues) {
      const keys = (issue.path ?? []).length === 0 ? unrecognizedKeys(issue) : undefined;
      if (keys) {
        // One issue lists every unknown key: each goes where it was written.
        const withKeys = (subset: string[]) => [Object.assign({}, issue, { keys: subset })];
        const defaultKeys = keys.filter((key) => at.fromDefaults(key));
        const ownKeys = keys.filter((key) => !at.fromDefaults(key));
        if (defaultKeys.length) diagnostics.addSchemaIssues(at.defaults, withKeys(defaultKeys));
        if (ownKeys.length) diagnostics.addSchemaIssues(at.image, withKeys(ownKeys));
        continue;
      }
      const first = issue.path?.[0];
      const key = typeof first === "object" && first !== null ? first.key : first;
      diagnostics.addSchemaIssues(key !== undefined && at.fromDefaults(key) ? at.defaults : at.image, [issue]);
    }
    return INVALID;
  } catch (error) {
    const message = `${plugin.kind} "${plugin.name}" could not check its options: ${(error as Error)?.message ?? String(error)}`;
    diagnostics.add(plugin.at, message, {
      atKey: plugin.kind === "provisioner",
      hint: "the plugin's schema threw: update or report the plugin",
    });
    return INVALID;
  }
}

/** Where a driver's option problems are reported: at the image, or at `defaults:` for an option the image took from there. */
interface DriverOptionsPlace {
  image: PathSegment[];
  defaults: PathSegment[];
  fromDefaults: (key: PropertyKey) => boolean;
}

/** A reviewer sees which steps run the project's own code, and that validation did not run it. */
function noteLocal(plugin: LoadedPlugin<unknown> | undefined, at: PathSegment[], diagnostics: Diagnostics): void {
  if (!plugin?.local) return;
  const file = plugin.local.path;
  if (plugin.local.loaded) diagnostics.note(at, `runs code of the project: ${file}`);
  else diagnostics.note(at, `runs code of the project: ${file} (not loaded now; its options are checked when it runs)`);
}

function packageId(found: PluginPackage): string {
  return `${found.name}@${found.version}`;
}

/**
 * Runs a plugin's host check and reports each problem at its place in the options (or at `fallback`, the plugin's name). A
 * preflight that throws is reported the same way: validation must not crash on a plugin's bug.
 */
async function preflight(
  check: () => Promise<PreflightProblem[]> | PreflightProblem[],
  at: PathSegment[],
  fallback: PathSegment[],
  diagnostics: Diagnostics,
): Promise<void> {
  let problems: PreflightProblem[];
  try {
    problems = await check();
  } catch (error) {
    problems = [
      {
        message: `host check failed: ${(error as Error).message}`,
        ...((error as { hint?: string }).hint ? { hint: (error as { hint: string }).hint } : {}),
      },
    ];
  }
  for (const problem of problems) {
    const path = problem.path?.length ? [...at, ...problem.path] : fallback;
    diagnostics.add(path, problem.message, { atKey: !problem.path?.length, ...(problem.hint ? { hint: problem.hint } : {}) });
  }
}

export { BAKE_FILE_NAMES, findBakeFile } from "./read.js";

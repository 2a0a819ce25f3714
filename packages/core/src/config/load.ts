import { readFile } from "node:fs/promises";
import { basename, dirname, extname, relative, resolve } from "node:path";
import { LineCounter, parseDocument } from "yaml";
import { KilnError } from "../errors.js";
import { parseDuration } from "../duration.js";
import { loadDriverFactory, loadProvisionerFactory, type PluginSearch } from "../plugins.js";
import { createRedactor, interpolate, resolveVariables, templateReferences, type VariableInputs } from "../variables.js";
import type { Driver, Provisioner, StandardSchemaV1, VariableValue } from "../types.js";
import { Diagnostics } from "./diagnostics.js";
import { noPositions, yamlSourceMap, type PathSegment, type SourceMap } from "./positions.js";
import { normalizeRuntimeOnly, type RuntimeOnly } from "../verify/runtime-only.js";
import { verifyScenarios } from "../verify/run.js";
import { bakeFileSchema, COMMON_STEP_KEYS, commonStepSchema, IMAGE_KEYS, type BakeFile } from "./schema.js";
import type { VerifyScenario } from "./verify-schema.js";

export interface ProvisionStep {
  /** Position in the image's provision list, after `use:` lists are inserted. */
  index: number;
  /** The `steps:` list(s) it came from, e.g. `hardening`. */
  via?: string;
  /** Provisioner name as written, e.g. `shell`. */
  name: string;
  provisioner: Provisioner<unknown>;
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
  driverOptions: unknown;
  from?: string;
  provision: ProvisionStep[];
  /** Start-up scenarios to verify the artefact with (empty: no verify). */
  verify: (VerifyScenario & { name: string })[];
  runtimeOnly?: RuntimeOnly;
  tags: string[];
  labels: Record<string, string>;
  timeoutMs?: number;
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
}

export interface LoadOptions {
  variables?: VariableInputs;
  /** Where plugins resolve from besides the bake file's directory. */
  plugins?: Partial<PluginSearch>;
}

export const BAKE_FILE_NAMES = ["kiln.yaml", "kiln.yml", "kiln.config.ts", "kiln.config.mts", "kiln.config.js", "kiln.config.mjs"];

/** Reads, validates and resolves a bake file. Throws a KilnError (exit code 2) listing every problem at once. */
export async function loadProject(file: string, options: LoadOptions = {}): Promise<Project> {
  const path = resolve(file);
  const dir = dirname(path);
  const fromHere = relative(process.cwd(), path);
  const shown = fromHere && !fromHere.startsWith("..") ? fromHere : path;
  const { data, positions } = await readBakeFile(path, shown);
  const diagnostics = new Diagnostics(shown, positions);

  const parsed = bakeFileSchema.safeParse(data);
  if (!parsed.success) diagnostics.addSchemaIssues([], parsed.error.issues);
  diagnostics.throwIfAny();
  const bakeFile = (parsed as { data: BakeFile }).data;

  // From here on every problem is collected, so one run of `kiln validate` reports them all.
  checkReferences(bakeFile, diagnostics);
  const order = dependencyOrder(bakeFile, diagnostics);
  const { values: variables, problems } = await resolveVariables(bakeFile.variables, options.variables ?? {}, dir);
  for (const problem of problems) {
    if (problem.declared) diagnostics.add(["variables", problem.name], problem.message, { atKey: true });
    else diagnostics.addGeneral(problem.message, "declare it under variables:, or check its spelling");
  }
  const search: PluginSearch = { from: [dir, ...(options.plugins?.from ?? [])], ...pluginRegistry(options) };
  const images: ImageSpec[] = [];
  for (const name of order) {
    const image = await resolveImage(name, bakeFile, variables, search, dir, diagnostics);
    if (image) images.push(image);
  }
  diagnostics.throwIfAny();
  const name = bakeFile.project ?? (basename(dir).replace(/[^A-Za-z0-9_.-]/g, "-") || "kiln");
  return { name, file: path, dir, variables, images, redact: createRedactor(variables) };
}

function pluginRegistry(options: LoadOptions): Pick<PluginSearch, "registry"> {
  return options.plugins?.registry ? { registry: options.plugins.registry } : {};
}

/** Finds the bake file in a directory (`kiln.yaml`, then `kiln.config.ts`, …). */
export async function findBakeFile(dir: string): Promise<string> {
  for (const name of BAKE_FILE_NAMES) {
    const candidate = resolve(dir, name);
    if (await readFile(candidate).then(() => true, () => false)) return candidate;
  }
  throw new KilnError("E_CONFIG", `no bake file in ${dir} (looked for ${BAKE_FILE_NAMES.join(", ")})`, {
    hint: "create one with `kiln init`, or point at it with -C <dir> or --file <path>",
  });
}

async function readBakeFile(path: string, shown: string): Promise<{ data: unknown; positions: SourceMap }> {
  const extension = extname(path);
  if ([".ts", ".mts", ".js", ".mjs"].includes(extension)) {
    const { createJiti } = await import("jiti");
    const jiti = createJiti(import.meta.url, { moduleCache: false });
    try {
      return { data: await jiti.import(path, { default: true }), positions: noPositions };
    } catch (error) {
      throw new KilnError("E_CONFIG", `${shown}: cannot load: ${(error as Error).message}`, { cause: error });
    }
  }
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new KilnError("E_CONFIG", `cannot read bake file ${shown}: ${(error as NodeJS.ErrnoException).code ?? error}`, {
      hint: "check the path, or create one with `kiln init`",
    });
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new KilnError("E_CONFIG", `${shown}: not valid YAML`, {
      diagnostics: doc.errors.map((error) => {
        const [start] = error.linePos ?? [];
        return {
          file: shown,
          path: "",
          message: (error.message.split("\n")[0] ?? error.code).replace(/ at line \d+, column \d+:?$/, ""),
          ...(start ? { line: start.line, column: start.col } : {}),
        };
      }),
    });
  }
  return { data: doc.toJS(), positions: yamlSourceMap(doc, lines) };
}

/** Every `{{ name }}` must name a declared variable; sensitive ones may not end up in tags or labels. */
function checkReferences(bakeFile: BakeFile, diagnostics: Diagnostics): void {
  const declared = bakeFile.variables;
  const sections: [PathSegment[], unknown][] = [[["steps"], bakeFile.steps], ...Object.entries(bakeFile.images).map(([name, image]): [PathSegment[], unknown] => [["images", name], image])];
  for (const [at, section] of sections) {
    walkStrings(section, at, (text, path) => {
      for (const name of templateReferences(text)) {
        if (!(name in declared)) {
          diagnostics.add(path, `undefined variable "${name}"`, { hint: `declare it under variables: ${name}: { default: … }` });
        } else if (declared[name]?.sensitive && (path[2] === "tags" || path[2] === "labels")) {
          diagnostics.add(path, `sensitive variable "${name}" would be written into the image's ${path[2]}`, {
            hint: "tags and labels are public: use a non-sensitive variable",
          });
        }
      }
    });
  }
}

function walkStrings(value: unknown, path: PathSegment[], visit: (text: string, path: PathSegment[]) => void): void {
  if (typeof value === "string") visit(value, path);
  else if (Array.isArray(value)) {
    for (const [index, item] of value.entries()) walkStrings(item, [...path, index], visit);
  }
  else if (value !== null && typeof value === "object") {
    for (const [key, item] of Object.entries(value)) walkStrings(item, [...path, key], visit);
  }
}

/** Orders images so parents come first; reports missing parents and cycles. */
function dependencyOrder(bakeFile: BakeFile, diagnostics: Diagnostics): string[] {
  const images = bakeFile.images;
  const order: string[] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (name: string, chain: string[]): void => {
    if (state.get(name) === "done") return;
    if (state.get(name) === "visiting") {
      const cycle = [...chain.slice(chain.indexOf(name)), name];
      diagnostics.add(["images", name, "from"], `cycle in from: ${cycle.join(" → ")}`, {
        hint: "an image cannot be built on itself, directly or through others",
      });
      return;
    }
    state.set(name, "visiting");
    const parent = images[name]?.from;
    if (parent !== undefined) {
      if (!(parent in images)) {
        diagnostics.add(["images", name, "from"], `image "${parent}" is not defined`, {
          hint: `define it under images:, or use one of: ${Object.keys(images).join(", ")}`,
        });
      } else visit(parent, [...chain, name]);
    }
    state.set(name, "done");
    order.push(name);
  };
  for (const name of Object.keys(images)) visit(name, []);
  return order;
}

async function resolveImage(
  name: string,
  bakeFile: BakeFile,
  variables: Record<string, VariableValue>,
  search: PluginSearch,
  dir: string,
  diagnostics: Diagnostics,
): Promise<ImageSpec | undefined> {
  const image = interpolate(bakeFile.images[name], variables);
  if (!image) return undefined;
  const at = ["images", name];
  const driverInput = Object.fromEntries(Object.entries(image).filter(([key]) => !IMAGE_KEYS.has(key)));
  if (image.from !== undefined && "source" in driverInput) {
    diagnostics.add([...at, "source"], "an image has either `from:` or `source:`, not both", { atKey: true });
  } else if (image.from === undefined && !("source" in driverInput)) {
    diagnostics.add(at, "no `source:` — say what the image starts from", {
      hint: 'e.g. source: "debian:bookworm", source: { debootstrap: { suite: bookworm } }, or from: <another image>',
    });
  }

  const driver = await loadPlugin(() => loadDriverFactory(image.driver, search), [...at, "driver"], diagnostics);
  const instance = driver?.({ cwd: dir });
  const driverOptions = instance ? await validate(instance.schema, driverInput, at, diagnostics) : undefined;

  const provision: ProvisionStep[] = [];
  for (const { step, path, via } of expandSteps(image.provision, [...at, "provision"], interpolate(bakeFile.steps, variables), diagnostics)) {
    const [stepName, rawOptions] = Object.entries(step)[0] as [string, Record<string, unknown>];
    const stepPath = [...path, stepName];
    const factory = await loadPlugin(() => loadProvisionerFactory(stepName, search), stepPath, diagnostics, true);
    const provisioner = factory?.();
    const { common, rest } = splitCommonStepOptions(rawOptions, stepPath, diagnostics);
    const options = provisioner ? await validate(provisioner.schema, rest, stepPath, diagnostics) : undefined;
    if (provisioner && options !== INVALID) {
      provision.push({ index: provision.length, name: stepName, provisioner, options, ...(via ? { via } : {}), ...common });
    }
  }
  const runtimeOnly = normalizeRuntimeOnly(image.runtime_only);
  for (const [index, name] of (runtimeOnly?.variables ?? []).entries()) {
    if (!(name in bakeFile.variables)) {
      const at2 = Array.isArray(image.runtime_only) ? [...at, "runtime_only", image.runtime_only.indexOf(name)] : [...at, "runtime_only", "variables", index];
      diagnostics.add(at2, `"${name}" is neither an absolute path nor a declared variable`, { hint: "paths start with /; variables must be declared under variables:" });
    }
  }
  for (const [index, scenario] of verifyScenarios(image.verify).entries()) {
    const where = Array.isArray(image.verify) ? [...at, "verify", index, "runtime"] : [...at, "verify", "runtime"];
    const support = instance?.runtimeSupport ?? {};
    if (scenario.runtime?.user_data !== undefined && !support.userData) {
      diagnostics.add([...where, "user_data"], `driver "${image.driver}" cannot inject cloud-init user-data`, { atKey: true, hint: "use env, files or boot_script" });
    }
    if (scenario.runtime?.boot_script !== undefined && !support.bootScript) {
      diagnostics.add([...where, "boot_script"], `driver "${image.driver}" cannot run a boot script`, { atKey: true, hint: "use env or files" });
    }
  }
  if (!instance || driverOptions === INVALID) return undefined;
  return {
    name,
    driverName: image.driver,
    driver: instance,
    driverOptions,
    ...(image.from !== undefined ? { from: image.from } : {}),
    provision,
    verify: verifyScenarios(image.verify),
    ...(runtimeOnly ? { runtimeOnly } : {}),
    tags: image.tags,
    labels: image.labels,
    ...(image.timeout !== undefined ? { timeoutMs: parseDuration(image.timeout) } : {}),
  };
}

type Step = Record<string, unknown>;

/** Replaces each `- use: name` by the steps of that list (recursively), keeping where each step was written for errors. */
function expandSteps(
  steps: Step[],
  path: PathSegment[],
  lists: Record<string, Step[]>,
  diagnostics: Diagnostics,
  chain: string[] = [],
): { step: Step; path: PathSegment[]; via?: string }[] {
  return steps.flatMap((step, index) => {
    const name = step.use;
    if (typeof name !== "string") return [{ step, path: [...path, index], ...(chain.length ? { via: chain.join(" → ") } : {}) }];
    const list = lists[name];
    if (!list) {
      diagnostics.add([...path, index, "use"], `no step list named "${name}"`, { hint: `define it under steps:${Object.keys(lists).length ? ` (defined: ${Object.keys(lists).join(", ")})` : ""}` });
      return [];
    }
    if (chain.includes(name)) {
      diagnostics.add([...path, index, "use"], `step list "${name}" uses itself: ${[...chain, name].join(" → ")}`);
      return [];
    }
    return expandSteps(list, ["steps", name], lists, diagnostics, [...chain, name]);
  });
}

const INVALID = Symbol("invalid");

async function validate(
  schema: StandardSchemaV1<unknown, unknown>,
  input: unknown,
  at: PathSegment[],
  diagnostics: Diagnostics,
): Promise<unknown> {
  const result = await schema["~standard"].validate(input);
  if (result.issues) {
    diagnostics.addSchemaIssues(at, result.issues);
    return INVALID;
  }
  return result.value;
}

async function loadPlugin<T>(
  load: () => Promise<T>,
  path: PathSegment[],
  diagnostics: Diagnostics,
  atKey = false,
): Promise<T | undefined> {
  try {
    return await load();
  } catch (error) {
    if (!(error instanceof KilnError)) throw error;
    diagnostics.add(path, error.message, { atKey, ...(error.hint ? { hint: error.hint } : {}) });
    return undefined;
  }
}

function splitCommonStepOptions(
  options: Record<string, unknown>,
  path: PathSegment[],
  diagnostics: Diagnostics,
): { common: Pick<ProvisionStep, "timeoutMs" | "pauseBeforeMs" | "maxRetries">; rest: Record<string, unknown> } {
  const rest = Object.fromEntries(Object.entries(options).filter(([key]) => !(COMMON_STEP_KEYS as string[]).includes(key)));
  const parsed = commonStepSchema.safeParse(options);
  if (!parsed.success) {
    diagnostics.addSchemaIssues(path, parsed.error.issues);
    return { common: { maxRetries: 0 }, rest };
  }
  const { timeout, pause_before: pauseBefore, max_retries: maxRetries } = parsed.data;
  return {
    common: {
      maxRetries: maxRetries ?? 0,
      ...(timeout !== undefined ? { timeoutMs: parseDuration(timeout) } : {}),
      ...(pauseBefore !== undefined ? { pauseBeforeMs: parseDuration(pauseBefore) } : {}),
    },
    rest,
  };
}

import { dirname, relative, resolve } from "node:path";
import { type Diagnostic, formatDiagnostic, isKilnError, type Logger, type PluginKind, pluginInit } from "@kiln/core";
import {
  findInstalledPlugins,
  inspectPlugin,
  listPluginUses,
  type PluginReport,
  type PluginSearch,
  type PluginStatus,
  type PluginUse,
  type PluginUses,
} from "@kiln/core/engine";
import { parseCommandArgs } from "../args.js";
import { CLI_DIR, locateBakeFile } from "../project.js";

/** One plugin as `kiln plugins` shows it: what resolving its name gave, and where the bake file uses it. */
interface PluginEntry {
  kind: PluginKind;
  name: string;
  status: PluginStatus;
  package?: string;
  version?: string;
  path?: string;
  apiVersion?: number;
  /** Found in a node_modules directory (not only named by the bake file). */
  installed: boolean;
  usedBy: (Omit<PluginUse, "kind" | "name"> & { file: string })[];
  problem?: PluginReport["problem"];
}

const USABLE = new Set<PluginStatus>(["ok", "project-code"]);
const SILENT: Logger = { info: () => {}, warn: () => {}, debug: () => {} };

/**
 * `kiln plugins`: the drivers and provisioners that resolve from this project. Runs no code of the project — the bake file is
 * read as YAML (a kiln.config.ts is not run) and `plugins:` files are not imported; installed packages are, as validate does.
 */
export async function plugins(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs("plugins", argv);
  const bakeFile = await findBakeFileIfAny(values, positionals[0]);
  const uses = bakeFile ? await listPluginUses(bakeFile) : undefined;
  const dir = bakeFile ? dirname(bakeFile) : resolve(values.dir ?? ".");
  const search: PluginSearch = { from: [dir, CLI_DIR], local: localPlugins(uses), runProjectCode: false };
  const installed = await findInstalledPlugins(search.from);

  const names = new Map<string, { kind: PluginKind; name: string }>();
  const add = (kind: PluginKind, name: string) => names.set(`${kind}\u0000${name}`, { kind, name });
  for (const use of uses?.uses ?? []) add(use.kind, use.name);
  for (const local of uses?.local ?? []) add(local.kind, local.name);
  for (const plugin of installed) add(plugin.kind, plugin.name);

  const shownFile = uses ? shown(uses.file) : undefined;
  const entries: PluginEntry[] = [];
  for (const { kind, name } of [...names.values()].sort(byKindAndName)) {
    const report = await inspectPlugin(kind, name, search, pluginInit(kind, name, dir, SILENT));
    const usedBy = (uses?.uses ?? [])
      .filter((use) => use.kind === kind && use.name === name)
      .map(({ kind: _kind, name: _name, ...use }) => ({ ...use, file: shownFile as string }));
    entries.push({
      kind,
      name,
      status: report.status,
      ...(report.package ? { package: report.package.name, version: report.package.version } : {}),
      ...(report.path ? { path: report.path } : {}),
      ...(report.apiVersion === undefined ? {} : { apiVersion: report.apiVersion }),
      installed: installed.some((plugin) => plugin.kind === kind && plugin.name === name),
      usedBy,
      ...(report.problem ? { problem: report.problem } : {}),
    });
  }
  const unusable = entries.filter((entry) => entry.usedBy.length > 0 && !USABLE.has(entry.status));
  const problems = uses?.problems ?? [];
  const ok = unusable.length === 0 && problems.length === 0;

  if (values.json) {
    const answer = { file: uses?.file ?? null, code: uses?.code ?? false, searched: search.from, ok, plugins: entries, problems };
    process.stdout.write(`${JSON.stringify(answer, null, 2)}\n`);
  } else {
    process.stdout.write(`${describe(entries, uses, search.from, problems, unusable).join("\n")}\n`);
  }
  return ok ? 0 : 2;
}

/** The bake file named by the flags, or the one in the directory; none is fine (installed plugins are still listed). */
async function findBakeFileIfAny(values: { dir?: string; file?: string }, positional: string | undefined): Promise<string | undefined> {
  try {
    return await locateBakeFile(values, positional);
  } catch (error) {
    // A file named on the command line must exist; a directory without a bake file just has nothing to say about uses.
    if (values.file || positional || !isKilnError(error)) throw error;
    return undefined;
  }
}

function localPlugins(uses: PluginUses | undefined): NonNullable<PluginSearch["local"]> {
  const local = { drivers: {} as Record<string, string | null>, provisioners: {} as Record<string, string | null> };
  for (const plugin of uses?.local ?? []) local[plugin.kind === "driver" ? "drivers" : "provisioners"][plugin.name] = plugin.path;
  return local;
}

function byKindAndName(a: { kind: PluginKind; name: string }, b: { kind: PluginKind; name: string }): number {
  return a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name);
}

function shown(path: string): string {
  const fromHere = relative(process.cwd(), path);
  return fromHere && !fromHere.startsWith("..") ? fromHere : path;
}

const STATUS_TEXT: Record<PluginStatus, string> = {
  ok: "ok",
  "project-code": "plugin of the project (not loaded: kiln plugins runs no code of the project)",
  "not-installed": "not installed",
  "not-a-plugin-name": "not a plugin name",
  refused: "refused",
  "cannot-load": "cannot be imported",
  "wrong-shape": "wrong shape (not a Kiln plugin, or incomplete)",
  "other-core": "built for another Kiln core",
  "fails-to-start": "fails to start",
};

function describe(
  entries: PluginEntry[],
  uses: PluginUses | undefined,
  searched: string[],
  problems: Diagnostic[],
  unusable: PluginEntry[],
): string[] {
  const lines: string[] = [];
  if (!uses) lines.push("no bake file here: listing installed plugins only");
  else if (uses.code) {
    lines.push(`bake file: ${shown(uses.file)} is code, and kiln plugins runs none: listing installed plugins only`);
  } else {
    const named = new Set(uses.uses.map((use) => `${use.kind} ${use.name}`)).size;
    lines.push(`bake file: ${shown(uses.file)} (names ${named} plugin${named === 1 ? "" : "s"})`);
  }
  lines.push(
    `plugins resolve from: ${searched.map((dir, index) => (index === searched.length - 1 ? `${dir} (the kiln CLI)` : dir)).join(", then ")}`,
  );
  for (const entry of entries) {
    const unused = uses && !uses.code && entry.usedBy.length === 0 ? " (installed; the bake file does not use it)" : "";
    lines.push("", `${entry.kind} ${entry.name}: ${STATUS_TEXT[entry.status]}${unused}`);
    if (entry.package) {
      // A package that could not be imported has no factory to read a stamp from.
      const api =
        entry.apiVersion !== undefined
          ? `, plugin API ${entry.apiVersion}`
          : entry.status === "cannot-load"
            ? ""
            : ", plugin API not stamped (not made with defineDriver/defineProvisioner)";
      lines.push(`  package:  ${entry.package}@${entry.version}${api}`);
    }
    if (entry.path) lines.push(`  path:     ${entry.path}`);
    for (const [index, use] of entry.usedBy.entries()) {
      const where = use.line ? `${use.file}:${use.line}:${use.column ?? 1}` : use.file;
      lines.push(`  ${index === 0 ? "used by: " : "         "} ${use.image}: ${use.path}${use.via ? ` (via ${use.via})` : ""} (${where})`);
    }
    if (entry.problem) {
      lines.push(`  problem:  ${entry.problem.message}`);
      if (entry.problem.hint) lines.push(`  fix:      ${entry.problem.hint}`);
    }
  }
  if (problems.length > 0) lines.push("", "problems:", ...problems.map((problem) => `  ${formatDiagnostic(problem)}`));
  if (unusable.length > 0) {
    const list = unusable.map((entry) => `${entry.kind} ${entry.name}`).join(", ");
    lines.push("", `${unusable.length} plugin${unusable.length === 1 ? "" : "s"} the bake file names cannot be used: ${list}`);
  }
  return lines;
}

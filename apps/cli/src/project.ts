import { stat } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { findBakeFile, loadProject, parseVarFlag, type Project } from "@kiln/core/engine";

/** Where the CLI's own dependencies resolve from: plugins it ships with are found from here after the project's. */
export const CLI_DIR = dirname(fileURLToPath(import.meta.url));

export interface ProjectFlags {
  dir?: string | undefined;
  file?: string | undefined;
  var?: string[] | undefined;
  "var-file"?: string[] | undefined;
  "allow-path"?: string[] | undefined;
}

/**
 * Finds and loads the bake file named by -C/--file/a positional path, with variables from flags and KILN_VAR_* env. Plugins
 * of the project (`plugins:`) are loaded only when `runProjectCode` — not by `kiln validate` and `kiln inspect`.
 */
export async function openProject(flags: ProjectFlags, positional: string | undefined, { runProjectCode = true } = {}): Promise<Project> {
  const file = await locateBakeFile(flags, positional);
  return loadProject(file, {
    runProjectCode,
    // Directories outside the project the person running kiln lets every image read and write.
    allowPaths: (flags["allow-path"] ?? []).map((path) => resolve(path)),
    variables: {
      vars: Object.fromEntries((flags.var ?? []).map(parseVarFlag)),
      varFiles: (flags["var-file"] ?? []).map((path) => resolve(path)),
      env: process.env,
    },
    // Plugins resolve from the bake file's directory first (loadProject adds it), then from the CLI's own dependencies.
    plugins: { from: [CLI_DIR] },
    // What plugins say outside a bake (a fleet command's retries, say) goes to stderr, so stdout stays the command's answer.
    log: {
      info: (message) => process.stderr.write(`kiln: ${message}\n`),
      warn: (message) => process.stderr.write(`kiln: warning: ${message}\n`),
      debug: () => {},
    },
  });
}

export async function locateBakeFile(flags: ProjectFlags, positional: string | undefined): Promise<string> {
  const base = resolve(flags.dir ?? ".");
  const target = flags.file ?? positional;
  if (!target) return findBakeFile(base);
  const path = resolve(base, target);
  const info = await stat(path).catch(() => undefined);
  return info?.isDirectory() ? findBakeFile(path) : path;
}

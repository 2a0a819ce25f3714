import { readFile } from "node:fs/promises";
import { extname, resolve } from "node:path";
import { LineCounter, parseDocument } from "yaml";
import { KilnError } from "../errors.js";
import { noPositions, yamlSourceMap, type SourceMap } from "./positions.js";

export const BAKE_FILE_NAMES = ["kiln.yaml", "kiln.yml", "kiln.config.ts", "kiln.config.mts", "kiln.config.js", "kiln.config.mjs"];

/** Finds the bake file in a directory (`kiln.yaml`, then `kiln.config.ts`, …). */
export async function findBakeFile(dir: string): Promise<string> {
  for (const name of BAKE_FILE_NAMES) {
    const candidate = resolve(dir, name);
    if (
      await readFile(candidate).then(
        () => true,
        () => false,
      )
    )
      return candidate;
  }
  throw new KilnError("E_CONFIG", `no bake file in ${dir} (looked for ${BAKE_FILE_NAMES.join(", ")})`, {
    hint: "create one with `kiln init`, or point at it with -C <dir> or --file <path>",
  });
}

export async function readBakeFile(path: string, shown: string): Promise<{ data: unknown; positions: SourceMap }> {
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

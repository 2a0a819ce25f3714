import { constants } from "node:fs";
import { lstat, open } from "node:fs/promises";
import { extname, resolve } from "node:path";
import { type Document, isAlias, isCollection, isPair, isScalar, LineCounter, type Node, parseDocument, visit } from "yaml";
import { type Diagnostic, KilnError, type KilnErrorCode } from "../errors.js";
import { noPositions, type SourceMap, yamlSourceMap } from "./positions.js";

export const BAKE_FILE_NAMES = ["kiln.yaml", "kiln.yml", "kiln.config.ts", "kiln.config.mts", "kiln.config.js", "kiln.config.mjs"];

/**
 * A bake file, a var file or a runtime file larger than this is refused: they are text a person writes (a large project's is
 * a few dozen KiB), and a YAML parser takes about a second for this much.
 */
export const MAX_INPUT_BYTES = 64 * 1024;
/** Deeper nesting than this is no bake file a person wrote, and every walk over the file stays well within the stack. */
const MAX_DEPTH = 64;
/** yaml's own guard against alias bombs: at most this many alias expansions per document. */
const MAX_ALIASES = 100;

/** Finds the bake file in a directory (`kiln.yaml`, then `kiln.config.ts`, …). */
export async function findBakeFile(dir: string): Promise<string> {
  for (const name of BAKE_FILE_NAMES) {
    const candidate = resolve(dir, name);
    // Only whether it is there: reading it here could block on a FIFO or never end on /dev/zero.
    if (
      await lstat(candidate).then(
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

/**
 * Reads a text input Kiln is given (bake file, var file, runtime file): a regular file of at most {@link MAX_INPUT_BYTES},
 * valid UTF-8. A FIFO, a device (`/dev/zero`) or a huge file is refused before it is read, so nothing can hang or fill memory.
 */
export async function readTextInput(
  path: string,
  shown: string,
  what: string,
  { code = "E_CONFIG", hint = "check the path" }: { code?: KilnErrorCode; hint?: string } = {},
): Promise<string> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    // O_NONBLOCK: opening a FIFO with no writer must not wait for one.
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    throw new KilnError(code, `cannot read ${what} ${shown}: ${(error as NodeJS.ErrnoException).code ?? error}`, { hint });
  }
  try {
    const info = await handle.stat();
    if (!info.isFile())
      throw new KilnError(code, `${what} ${shown} is not a regular file`, { hint: "give a file, not a device, FIFO or directory" });
    if (info.size > MAX_INPUT_BYTES) {
      throw new KilnError(code, `${what} ${shown} is ${info.size} bytes; at most ${MAX_INPUT_BYTES} are read`, {
        hint: "is it the right file?",
      });
    }
    const bytes = await handle.readFile();
    return decodeUtf8(bytes, shown, what);
  } finally {
    await handle.close();
  }
}

/** UTF-8, or a diagnostic at the first byte that is not: a silently replaced character could change what a value means. */
function decodeUtf8(bytes: Buffer, shown: string, what: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    let valid = bytes.length;
    for (let end = 0; end <= bytes.length; end++) {
      try {
        new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(0, end), { stream: true });
      } catch {
        valid = end - 1;
        break;
      }
    }
    const before = bytes.subarray(0, Math.max(0, valid)).toString("utf8").split("\n");
    throw new KilnError("E_CONFIG", `${what} ${shown} is not valid UTF-8`, {
      diagnostics: [
        {
          file: shown,
          path: "",
          message: "invalid UTF-8 here",
          hint: "save the file as UTF-8",
          line: before.length,
          column: (before.at(-1)?.length ?? 0) + 1,
        },
      ],
    });
  }
}

export async function readBakeFile(path: string, shown: string): Promise<{ data: unknown; positions: SourceMap }> {
  const extension = extname(path);
  if ([".ts", ".mts", ".js", ".mjs"].includes(extension)) {
    // A TypeScript or JavaScript config is code: loading it runs it. Review it as code; YAML bake files never run anything.
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
    text = await readTextInput(path, shown, "bake file", { hint: "check the path, or create one with `kiln init`" });
  } catch (error) {
    // A problem with the file as a whole is reported at its start, like any other, so editors and CI logs link to it.
    if (!(error instanceof KilnError) || error.diagnostics.length > 0) throw error;
    if (/: ENOENT$/.test(error.message)) throw error;
    throw new KilnError(error.code, error.message, {
      ...(error.hint ? { hint: error.hint } : {}),
      diagnostics: [{ file: shown, path: "", message: error.message, ...(error.hint ? { hint: error.hint } : {}), line: 1, column: 1 }],
    });
  }
  const lines = new LineCounter();
  // Duplicate keys are found below, in one pass: the parser's own check compares every key with every other.
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: false, merge: false });
  const at = (node: Node | null | undefined, message: string, hint?: string): Diagnostic => {
    const offset = node?.range?.[0];
    const position = offset === undefined ? { line: 1, col: 1 } : lines.linePos(offset);
    return { file: shown, path: "", message, ...(hint ? { hint } : {}), line: position.line, column: position.col };
  };
  const fail = (diagnostics: Diagnostic[]): never => {
    throw new KilnError("E_CONFIG", `${shown}: ${diagnostics.length} problem${diagnostics.length === 1 ? "" : "s"} found`, { diagnostics });
  };
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
  if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) {
    fail([at(null, "the bake file is empty", "a bake file has at least `images:` with one image (kiln init writes a starter)")]);
  }
  const structural = structuralProblems(doc, at);
  if (structural.length > 0) fail(structural);
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (error) {
    // Unresolvable aliases and alias bombs: say where, instead of the parser's stack trace.
    const alias = firstAlias(doc);
    const message = /Excessive alias count/.test((error as Error).message)
      ? `aliases expand to too many values (more than ${MAX_ALIASES}): this looks like an alias bomb`
      : `alias ${alias ? `*${alias.source} ` : ""}has no anchor before it`;
    fail([at(alias, message, "define the anchor (&name) before the alias (*name), or write the value out")]);
  }
  return { data, positions: yamlSourceMap(doc, lines) };
}

/**
 * What YAML allows but a bake file must not have, found without recursion: nesting deeper than {@link MAX_DEPTH}, merge keys
 * (`<<`, which YAML 1.2 does not merge), and keys that differ in YAML but are one key in JavaScript (`1` and `"1"`).
 */
function structuralProblems(
  doc: Document,
  at: (node: Node | null | undefined, message: string, hint?: string) => Diagnostic,
): Diagnostic[] {
  const problems: Diagnostic[] = [];
  const pending: { node: unknown; depth: number }[] = [{ node: doc.contents, depth: 1 }];
  while (pending.length > 0 && problems.length < 20) {
    const { node, depth } = pending.pop() as { node: unknown; depth: number };
    if (!isCollection(node)) continue;
    if (depth > MAX_DEPTH) {
      problems.push(at(node, `nested more than ${MAX_DEPTH} levels deep`, "a bake file is a few levels of maps and lists"));
      continue;
    }
    const seen = new Map<string, Node>();
    for (const item of node.items) {
      if (isPair(item)) {
        const key = item.key;
        if (isScalar(key)) {
          if (key.value === "<<")
            problems.push(
              at(key, "merge keys (<<) are not supported", "write the keys out, or share provision steps with steps: and use:"),
            );
          // A JavaScript object cannot hold it as a key: it would vanish (or change the object's prototype).
          if (key.value === "__proto__") problems.push(at(key, '"__proto__" cannot be a key', "choose another name"));
          const text = String(key.value);
          const earlier = seen.get(text);
          if (earlier && isScalar(earlier) && earlier.source === key.source)
            problems.push(at(key, `key ${JSON.stringify(text)} appears twice in this map`));
          else if (earlier)
            problems.push(at(key, `key ${JSON.stringify(text)} repeats an earlier key: written differently, they are the same key`));
          else seen.set(text, key);
        } else if (isCollection(key)) {
          problems.push(at(key, "a key must be a plain value, not a map or list"));
        }
        pending.push({ node: item.value, depth: depth + 1 });
      } else pending.push({ node: item, depth: depth + 1 });
    }
  }
  return problems;
}

function firstAlias(doc: Document): (Node & { source: string }) | undefined {
  let found: (Node & { source: string }) | undefined;
  visit(doc, {
    Alias(_key, node) {
      if (isAlias(node) && !found) {
        found = node;
        return visit.BREAK;
      }
      return undefined;
    },
  });
  return found;
}

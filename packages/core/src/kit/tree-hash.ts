import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { lstat, readdir, readFile, readlink, stat } from "node:fs/promises";
import type { Stats } from "node:fs";
import { join, resolve } from "node:path";
import picomatch from "picomatch";

/** What no fingerprint should see: version control, installed dependencies, Ansible's retry files, editor droppings. */
export const DEFAULT_EXCLUDES: readonly string[] = [".git", ".hg", ".svn", "node_modules", "*.retry", ".DS_Store", "*.swp", "*~"];

export interface HashTreeOptions {
  /** Directory relative paths resolve from. Default: the process's working directory. */
  cwd?: string;
  /**
   * Glob patterns (picomatch) of entries to leave out. A pattern without `/` is matched against each entry's name (`*.retry`,
   * `.git`); one with `/` against its path from the root (`roles/*\/tests`). Excluded directories are not read. Default
   * {@link DEFAULT_EXCLUDES}; pass `[...DEFAULT_EXCLUDES, "extra"]` to extend.
   */
  exclude?: readonly string[];
}

/**
 * A hex sha256 over files and directory trees that two checkouts of the same commit agree on: each entry's path (from its
 * root), kind and content, and for files the executable bit only — not other mode bits (umask 002 and 022 give the same
 * hash), owners or times. Symlinks inside a tree count by their target and are not followed; a root that is a symlink is
 * followed. Roots are hashed in the order given; a missing root throws ENOENT.
 */
export async function hashTree(paths: string | readonly string[], options: HashTreeOptions = {}): Promise<string> {
  const hash = createHash("sha256");
  const excluded = exclusionMatcher(options.exclude ?? DEFAULT_EXCLUDES);
  for (const [index, path] of (typeof paths === "string" ? [paths] : paths).entries()) {
    hash.update(`root ${index}\0`);
    const entries: Entry[] = [];
    const root = resolve(options.cwd ?? process.cwd(), path);
    // A root given as a symlink (a role directory linked in) counts by what it points at; links inside a tree count as links.
    await collect(root, "", await stat(root), excluded, entries);
    await hashEntries(hash, entries);
  }
  return hash.digest("hex");
}

type Matcher = (relative: string, name: string) => boolean;

function exclusionMatcher(patterns: readonly string[]): Matcher {
  const byName = picomatch(patterns.filter((pattern) => !pattern.includes("/")) as string[], { dot: true });
  const byPath = picomatch(patterns.filter((pattern) => pattern.includes("/")) as string[], { dot: true });
  const hasPathPatterns = patterns.some((pattern) => pattern.includes("/"));
  return (relative, name) => byName(name) || (hasPathPatterns && byPath(relative));
}

/** One entry of a tree, in the order the hash takes them: its header text, and for a file where its content is. */
interface Entry {
  header: string;
  file?: { absolute: string; size: number };
}

/** Walks the tree in hash order (byte-sorted names), stating each directory's entries at once. */
async function collect(absolute: string, relative: string, info: Stats, excluded: Matcher, entries: Entry[]): Promise<void> {
  if (info.isSymbolicLink()) {
    entries.push({ header: `link\0${relative}\0${await readlink(absolute)}\0` });
  } else if (info.isDirectory()) {
    entries.push({ header: `dir\0${relative}\0` });
    // Byte order, not the locale's: every machine sorts the same way.
    const names = (await readdir(absolute)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const children = names
      .map((name) => ({ name, child: relative ? `${relative}/${name}` : name }))
      .filter(({ name, child }) => !excluded(child, name));
    const infos = await Promise.all(children.map(({ name }) => lstat(join(absolute, name))));
    for (const [index, { name, child }] of children.entries()) {
      await collect(join(absolute, name), child, infos[index] as Stats, excluded, entries);
    }
  } else if (info.isFile()) {
    // The size goes first, so one file's content can never be read as the next entry's header.
    entries.push({ header: `file\0${relative}\0${info.mode & 0o100 ? "x" : "-"}\0${info.size}\0`, file: { absolute, size: info.size } });
  } else {
    entries.push({ header: `other\0${relative}\0` });
  }
}

/** Files up to this size are read whole, several at a time; larger ones are streamed, one at a time. */
const READ_WHOLE_BYTES = 1 << 20;
const READS_AHEAD = 16;

/**
 * Feeds the entries to the hash in order while the next small files are already being read: a tree of many small files is
 * bound by per-file open/read/close round trips, not by sha256 (≈ 1 GB/s), so reading one at a time left the disk idle.
 */
async function hashEntries(hash: Hash, entries: Entry[]): Promise<void> {
  const reads = new Map<number, Promise<Buffer>>();
  const readAhead = (index: number) => {
    const file = entries[index]?.file;
    if (!file || file.size > READ_WHOLE_BYTES) return;
    const read = readFile(file.absolute);
    read.catch(() => {}); // awaited in order below; a failure must not surface earlier as an unhandled rejection
    reads.set(index, read);
  };
  for (let index = 0; index < READS_AHEAD; index++) readAhead(index);
  for (const [index, entry] of entries.entries()) {
    readAhead(index + READS_AHEAD);
    hash.update(entry.header);
    if (!entry.file) continue;
    const read = reads.get(index);
    reads.delete(index);
    if (read) hash.update(await read);
    else for await (const chunk of createReadStream(entry.file.absolute)) hash.update(chunk as Buffer);
  }
}

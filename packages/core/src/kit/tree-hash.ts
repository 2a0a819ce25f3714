import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { lstat, readdir, readlink, stat } from "node:fs/promises";
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
    await hashEntry(hash, resolve(options.cwd ?? process.cwd(), path), "", excluded);
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

async function hashEntry(hash: Hash, absolute: string, relative: string, excluded: Matcher): Promise<void> {
  // A root given as a symlink (a role directory linked in) counts by what it points at; links inside a tree count as links.
  const info = relative === "" ? await stat(absolute) : await lstat(absolute);
  if (info.isSymbolicLink()) {
    hash.update(`link\0${relative}\0${await readlink(absolute)}\0`);
  } else if (info.isDirectory()) {
    hash.update(`dir\0${relative}\0`);
    // Byte order, not the locale's: every machine sorts the same way.
    const names = (await readdir(absolute)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const name of names) {
      const child = relative ? `${relative}/${name}` : name;
      if (!excluded(child, name)) await hashEntry(hash, join(absolute, name), child, excluded);
    }
  } else if (info.isFile()) {
    // The size goes first, so one file's content can never be read as the next entry's header.
    hash.update(`file\0${relative}\0${info.mode & 0o100 ? "x" : "-"}\0${info.size}\0`);
    for await (const chunk of createReadStream(absolute)) hash.update(chunk as Buffer);
  } else {
    hash.update(`other\0${relative}\0`);
  }
}

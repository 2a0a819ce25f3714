import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { parse } from "yaml";
import { type BakeContext, KilnError } from "@kiln/core";

/** A requirements file: a list of roles (the old form), or `roles:` and `collections:` lists. */
type Entry = string | { src?: unknown; name?: unknown; source?: unknown; type?: unknown };

/** What a requirements file asks for: how many roles and collections, and the local paths and tarballs it installs from. */
export interface Requirements {
  roles: number;
  collections: number;
  /**
   * Local sources, checked through `ctx.hostPath()` like any other host path a bake file names: they feed the bake key, so a
   * changed role tarball rebakes. Galaxy names and URLs are left to ansible-galaxy.
   */
  localSources: string[];
}

export async function readRequirements(ctx: BakeContext, file: string): Promise<Requirements> {
  const { roles, collections } = await entries(file);
  const localSources: string[] = [];
  for (const entry of [...roles, ...collections]) {
    const source = typeof entry === "string" ? entry : [entry.src, entry.name, entry.source].find((v) => typeof v === "string");
    if (typeof source !== "string" || !isLocal(source)) continue;
    localSources.push(await ctx.hostPath(resolve(dirname(file), source.replace(/^file:\/\//, ""))));
  }
  return { roles: roles.length, collections: collections.length, localSources };
}

function isLocal(source: string): boolean {
  if (source.startsWith("file://")) return true;
  if (/^[a-z+]+:\/\//i.test(source) || source.startsWith("git@")) return false;
  return source.startsWith(".") || source.startsWith("/") || source.includes("/") || /\.(tar\.gz|tgz|tar)$/.test(source);
}

async function entries(file: string): Promise<{ roles: Entry[]; collections: Entry[] }> {
  let document: unknown;
  try {
    document = parse(await readFile(file, "utf8"), { maxAliasCount: 100 });
  } catch (error) {
    throw new KilnError("E_CONFIG", `ansible: cannot read the requirements file ${file}: ${(error as Error).message.split("\n")[0]}`);
  }
  if (document == null) return { roles: [], collections: [] };
  if (Array.isArray(document)) return { roles: document as Entry[], collections: [] };
  if (typeof document !== "object")
    throw new KilnError("E_CONFIG", `ansible: the requirements file ${file} is not a list or a map of roles: and collections:`);
  const { roles, collections } = document as { roles?: unknown; collections?: unknown };
  return { roles: Array.isArray(roles) ? roles : [], collections: Array.isArray(collections) ? collections : [] };
}

import { randomBytes } from "node:crypto";
import { mkdir, readdir, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import type { ArtifactStore } from "@kiln/core/kit";
import { withFileLock } from "@kiln/core/kit";

/** A tag Vagrant can serve as a box version: `owner/name:1.2.0` (a tag such as `:latest` is no version). */
const VERSION_TAG = /^([\w.-]+(?:\/[\w.-]+)?):(\d+(?:\.\d+)*)$/;

interface BoxCatalog {
  name: string;
  versions: { version: string; providers: { name: "libvirt"; url: string; checksum_type: "sha256"; checksum: string }[] }[];
}

/**
 * Writes a `box.json` per tagged box name under `dir` (`<dir>/<owner>/<name>/box.json`), listing every version tag of the
 * store's boxes, so `vagrant box add <dir>/<owner>/<name>/box.json` installs (and `vagrant box outdated` sees) them, and a team
 * can serve the directory over HTTP as it is (with the boxes' URLs rewritten). Catalogs left with no version are removed.
 */
export async function writeCatalogs(store: ArtifactStore, dir: string): Promise<void> {
  await withFileLock(join(dir, ".lock"), async () => {
    const catalogs = new Map<string, BoxCatalog>();
    for (const artifact of await store.find({})) {
      const box = artifact.files?.find((file) => file.format === "box");
      if (!box) continue;
      for (const tag of artifact.tags) {
        const match = VERSION_TAG.exec(tag);
        if (!match?.[1] || !match[2]) continue;
        const catalog = catalogs.get(match[1]) ?? { name: match[1], versions: [] };
        catalog.versions.push({
          version: match[2],
          providers: [{ name: "libvirt", url: pathToFileURL(box.path).href, checksum_type: "sha256", checksum: box.sha256 }],
        });
        catalogs.set(match[1], catalog);
      }
    }
    const written = new Set<string>();
    for (const catalog of catalogs.values()) {
      catalog.versions.sort((a, b) => compareVersions(a.version, b.version));
      const file = join(dir, catalog.name, "box.json");
      await mkdir(dirname(file), { recursive: true });
      const temporary = `${file}.${randomBytes(4).toString("hex")}.tmp`;
      await writeFile(temporary, `${JSON.stringify(catalog, null, 2)}\n`);
      await rename(temporary, file);
      written.add(relative(dir, file));
    }
    for (const stale of (await catalogFiles(dir)).filter((file) => !written.has(relative(dir, file)))) await rm(stale, { force: true });
  });
}

async function catalogFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((entry) => entry.isFile() && entry.name === "box.json").map((entry) => join(entry.parentPath, entry.name));
}

/** Orders box versions (`1.10.0` after `1.9.2`). */
export function compareVersions(a: string, b: string): number {
  const [x, y] = [a.split(".").map(Number), b.split(".").map(Number)];
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
  return 0;
}

import { realpath } from "node:fs/promises";
import { dirname, isAbsolute, relative, resolve } from "node:path";

/** Why a host path named by a bake file was refused: the path as written, and `reason` ("is outside the project (…)"). */
export class OutsideProject extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`${path} ${reason}`);
  }
}

/**
 * The real path of `path` (relative to the project directory `dir`), checked to be inside the project — after symlinks, so a
 * link inside the project pointing out of it is refused too — or inside one of `allowed` (absolute directories the image or
 * the run explicitly opens). A path that does not exist yet (a download destination) is checked through its nearest existing
 * parent. URLs and other schemes are refused.
 */
export async function confinedPath(dir: string, path: string, allowed: readonly string[] = []): Promise<string> {
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(path)) throw new OutsideProject(path, "is a URL, not a path in the project");
  const wanted = resolve(dir, path);
  const real = await realpathOfNearest(wanted);
  const roots = await Promise.all([dir, ...allowed].map((root) => realpathOfNearest(resolve(dir, root))));
  if (roots.some((root) => isInside(root, real))) return real;
  const shown = real === wanted ? "" : ` (it resolves to ${real})`;
  throw new OutsideProject(path, `is outside the project${shown}`);
}

/** realpath of the path, or of its nearest existing ancestor with the rest appended. */
async function realpathOfNearest(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch {
    const parent = dirname(path);
    if (parent === path) return path;
    return resolve(await realpathOfNearest(parent), relative(parent, path));
  }
}

function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
}

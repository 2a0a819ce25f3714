import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { KilnError } from "@kiln/core";
import { withFileLock } from "@kiln/core/kit";
import { pickDebianMirror, readAptSources } from "./apt-sources.js";

/** A Debian root file system to build with debootstrap. */
export interface DebootstrapRecipe {
  /** Debian suite, e.g. "bookworm". */
  suite: string;
  /** debootstrap variant. Default "minbase" (the smallest system with apt). */
  variant?: "minbase" | "buildd" | "fakechroot" | "standard" | undefined;
  /** Extra packages to install, e.g. ["python3", "ca-certificates"]. */
  include?: string[] | undefined;
  /** Archive components. Default ["main"]. */
  components?: string[] | undefined;
  /** Mirror URL. Default: the first Debian mirror in the host's apt sources. */
  mirror?: string | undefined;
}

/** A recipe with every default filled in and the mirror resolved: what the cache key is computed from. */
export interface ResolvedRecipe {
  suite: string;
  variant: string;
  include: string[];
  components: string[];
  mirror: string;
  arch: string;
  /** 16 hex digits of sha256 over the fields above: equal recipes share one build. */
  key: string;
}

/** A built root file system: a tarball (numeric owners, device nodes included) in the cache. */
export interface Rootfs {
  recipe: ResolvedRecipe;
  /** `<cache>/<key>/rootfs.tar`. Shared: extract or stream it, never change it. */
  tarball: string;
  /** When the tree was built: the mirror's state at that time is what it holds. */
  created: string;
}

export interface BuildIo {
  signal?: AbortSignal | undefined;
  /** debootstrap's output, line by line. */
  onOutput?: ((line: string) => void) | undefined;
  /** Default: `$KILN_CACHE_DIR/debootstrap`, else `$XDG_CACHE_HOME/kiln/debootstrap`, else `~/.cache/kiln/debootstrap`. */
  cacheDir?: string | undefined;
}

/** Label names of the provenance a debootstrap tree carries (`dev.kiln.debootstrap.suite`…). */
export const DEBOOTSTRAP_LABEL_PREFIX = "dev.kiln.debootstrap";

export function defaultCacheDir(): string {
  const root = process.env.KILN_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "kiln");
  return join(root, "debootstrap");
}

/** Fills in the defaults and the mirror (from the host's apt sources), and computes the cache key. Builds nothing. */
export async function resolveRecipe(recipe: DebootstrapRecipe): Promise<ResolvedRecipe> {
  // Spelled one way, so equal recipes share a key: no trailing slash, each package once.
  const mirror = (recipe.mirror ?? pickDebianMirror(await readAptSources(), recipe.suite))?.replace(/\/+$/, "");
  if (!mirror) {
    throw new KilnError("E_SOURCE", `no Debian mirror found in the host's apt sources for suite "${recipe.suite}"`, {
      hint: "set source.debootstrap.mirror to a Debian mirror URL",
    });
  }
  const inputs = {
    suite: recipe.suite,
    variant: recipe.variant ?? "minbase",
    include: [...new Set(recipe.include ?? [])].sort(),
    components: recipe.components ?? ["main"],
    mirror,
    arch: process.arch,
  };
  return { ...inputs, key: createHash("sha256").update(JSON.stringify(inputs)).digest("hex").slice(0, 16) };
}

/** The root file system already built for this recipe, if any. */
export async function findRootfs(recipe: DebootstrapRecipe | ResolvedRecipe, cacheDir = defaultCacheDir()): Promise<Rootfs | undefined> {
  const resolved = "key" in recipe ? recipe : await resolveRecipe(recipe);
  const meta = await readFile(join(cacheDir, resolved.key, "meta.json"), "utf8").catch(() => undefined);
  if (meta === undefined) return undefined;
  return {
    recipe: resolved,
    tarball: join(cacheDir, resolved.key, "rootfs.tar"),
    created: (JSON.parse(meta) as { created: string }).created,
  };
}

/**
 * Builds the root file system for a recipe with debootstrap (about a minute), or reuses the one cached under its key. A lock
 * per key makes concurrent bakes (and test workers) wait for one build. Downloaded packages are cached across recipes.
 */
export async function buildRootfs(recipe: DebootstrapRecipe | ResolvedRecipe, io: BuildIo = {}): Promise<Rootfs> {
  const resolved = "key" in recipe ? recipe : await resolveRecipe(recipe);
  const cacheDir = io.cacheDir ?? defaultCacheDir();
  const found = await findRootfs(resolved, cacheDir);
  if (found) return found;
  return withFileLock(
    join(cacheDir, `${resolved.key}.build`),
    async () => {
      const built = await findRootfs(resolved, cacheDir);
      if (built) return built;
      await build(resolved, cacheDir, io);
      const rootfs = await findRootfs(resolved, cacheDir);
      if (!rootfs) throw new KilnError("E_SOURCE", `debootstrap tree ${resolved.key} was built but cannot be found in ${cacheDir}`);
      return rootfs;
    },
    { signal: io.signal },
  );
}

/** Extracts a root file system into `dir` (created if missing), keeping numeric owners, modes and device nodes. Needs root. */
export async function extractRootfs(rootfs: Rootfs, dir: string, io: Pick<BuildIo, "signal"> = {}): Promise<void> {
  await mkdir(dir, { recursive: true });
  await runTool("tar", ["--numeric-owner", "-xpf", rootfs.tarball, "-C", dir], io, "install it: apt-get install -y tar");
}

/** The provenance of a tree as `dev.kiln.debootstrap.*` labels (suite, variant, include, mirror, created). */
export function rootfsLabels(rootfs: Rootfs): Record<string, string> {
  return {
    [`${DEBOOTSTRAP_LABEL_PREFIX}.suite`]: rootfs.recipe.suite,
    [`${DEBOOTSTRAP_LABEL_PREFIX}.variant`]: rootfs.recipe.variant,
    [`${DEBOOTSTRAP_LABEL_PREFIX}.include`]: rootfs.recipe.include.join(","),
    [`${DEBOOTSTRAP_LABEL_PREFIX}.mirror`]: rootfs.recipe.mirror,
    [`${DEBOOTSTRAP_LABEL_PREFIX}.created`]: rootfs.created,
  };
}

/** `debootstrap bookworm/minbase`, for source descriptions. */
export function describeRecipe(recipe: DebootstrapRecipe): string {
  return `debootstrap ${recipe.suite}/${recipe.variant ?? "minbase"}`;
}

async function build(recipe: ResolvedRecipe, cacheDir: string, io: BuildIo): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new KilnError("E_MISSING_TOOL", "debootstrap sources need root (debootstrap creates device nodes and chroots)", {
      hint: "run kiln as root, or build the base once as root and use it as an image source",
    });
  }
  const debs = join(cacheDir, "debs");
  await mkdir(debs, { recursive: true });
  const work = await mkdtemp(join(tmpdir(), "kiln-debootstrap-"));
  const root = join(work, "rootfs");
  const target = join(cacheDir, recipe.key);
  try {
    const args = [
      `--variant=${recipe.variant}`,
      `--components=${recipe.components.join(",")}`,
      `--cache-dir=${debs}`,
      ...(recipe.include.length > 0 ? [`--include=${recipe.include.join(",")}`] : []),
      recipe.suite,
      root,
      recipe.mirror,
    ];
    await runTool("debootstrap", args, io, "install it: apt-get install -y debootstrap");
    // The downloaded packages live in the shared cache, not in every tree.
    await rm(join(root, "var/cache/apt/archives"), { recursive: true, force: true });
    await mkdir(join(root, "var/cache/apt/archives/partial"), { recursive: true });
    await unmountBelow(work);
    // Written next to its final place and renamed: a reader sees a whole tarball or none.
    const staging = join(cacheDir, `.${recipe.key}-${process.pid}`);
    await rm(staging, { recursive: true, force: true });
    await mkdir(staging, { recursive: true });
    await runTool(
      "tar",
      ["--numeric-owner", "-C", root, "-cf", join(staging, "rootfs.tar"), "."],
      io,
      "install it: apt-get install -y tar",
    );
    const { key: _key, ...inputs } = recipe;
    await writeFile(join(staging, "meta.json"), `${JSON.stringify({ ...inputs, created: new Date().toISOString() }, null, 2)}\n`);
    await rm(target, { recursive: true, force: true });
    await rename(staging, target);
  } finally {
    await unmountBelow(work);
    await rm(work, { recursive: true, force: true });
  }
}

function runTool(command: string, args: string[], io: Pick<BuildIo, "signal" | "onOutput">, installHint: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], ...(io.signal ? { signal: io.signal } : {}) });
    let tail: string[] = [];
    const collect = (chunk: Buffer) => {
      for (const line of chunk.toString().split("\n").filter(Boolean)) {
        io.onOutput?.(line);
        tail = [...tail.slice(-19), line];
      }
    };
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    child.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") reject(new KilnError("E_MISSING_TOOL", `${command} not found`, { hint: installHint }));
      else reject(error);
    });
    child.on("close", (code) => {
      if (code === 0) resolve();
      else reject(new KilnError("E_SOURCE", `${command} exited with code ${code}:\n${tail.join("\n")}`));
    });
  });
}

/** debootstrap mounts /proc and /sys inside the tree; if it was interrupted they may still be mounted, and must not be deleted through. */
async function unmountBelow(dir: string): Promise<void> {
  const mounts = (await readFile("/proc/self/mounts", "utf8").catch(() => ""))
    .split("\n")
    .map((line) => line.split(" ")[1] ?? "")
    .filter((target) => target.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const target of mounts) {
    await new Promise((resolve) => spawn("umount", ["-l", target], { stdio: "ignore" }).on("close", resolve).on("error", resolve));
  }
}

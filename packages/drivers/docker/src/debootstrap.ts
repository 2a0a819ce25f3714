import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import type Docker from "dockerode";
import lockfile from "proper-lockfile";
import { KilnError } from "@kiln/core";
import { pickDebianMirror, readAptSources } from "./apt-sources.js";

/** A Debian root filesystem built on the host with debootstrap and imported as a Docker image. */
export interface DebootstrapSource {
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

export interface DebootstrapImage {
  id: string;
  tag: string;
  mirror: string;
  /** When the tree was built: the mirror's state at that time is what the image holds. */
  created: string;
}

export interface DebootstrapIo {
  signal?: AbortSignal | undefined;
  onOutput?: ((line: string) => void) | undefined;
}

const LABEL_PREFIX = "dev.kiln.debootstrap";

/** The image already built for this recipe, if any (nothing is built). */
export async function findDebootstrapImage(docker: Docker, recipe: DebootstrapSource): Promise<DebootstrapImage | undefined> {
  const { tag } = await recipeKey(recipe);
  return findImage(docker, tag);
}

/** Builds (or reuses, keyed by its inputs) a Docker image holding a debootstrapped Debian tree. */
export async function debootstrapImage(docker: Docker, recipe: DebootstrapSource, io: DebootstrapIo = {}): Promise<DebootstrapImage> {
  const { inputs, key, tag } = await recipeKey(recipe);
  const found = await findImage(docker, tag);
  if (found) return found;

  const cache = join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "kiln", "debootstrap");
  await mkdir(join(cache, "debs"), { recursive: true });
  const lockTarget = join(cache, `${key}.lock`);
  await writeFile(lockTarget, "", { flag: "a" });
  // Parallel bakes (and test workers) asking for the same tree wait for one build instead of running debootstrap twice.
  const release = await lockfile.lock(lockTarget, { retries: { retries: 900, minTimeout: 1000, maxTimeout: 1000 }, stale: 30_000 });
  try {
    const built = await findImage(docker, tag);
    if (built) return built;
    await buildAndImport(docker, inputs, tag, join(cache, "debs"), io);
    const image = await findImage(docker, tag);
    if (!image) throw new KilnError("E_SOURCE", `debootstrap image ${tag} was imported but cannot be found`);
    return image;
  } finally {
    await release();
  }
}

/** The recipe's inputs (mirror resolved), its cache key and the image tag it is stored under. */
async function recipeKey(recipe: DebootstrapSource): Promise<{ inputs: Inputs & { arch: string }; key: string; tag: string }> {
  const mirror = recipe.mirror ?? pickDebianMirror(await readAptSources(), recipe.suite);
  if (!mirror) {
    throw new KilnError("E_SOURCE", `no Debian mirror found in the host's apt sources for suite "${recipe.suite}"`, {
      hint: "set source.debootstrap.mirror to a Debian mirror URL",
    });
  }
  const inputs = {
    suite: recipe.suite,
    variant: recipe.variant ?? "minbase",
    include: [...(recipe.include ?? [])].sort(),
    components: recipe.components ?? ["main"],
    mirror,
    arch: process.arch,
  };
  const key = createHash("sha256").update(JSON.stringify(inputs)).digest("hex").slice(0, 16);
  const tag = `kiln-debootstrap/${recipe.suite}:${key}`;

  return { inputs, key, tag };
}

async function findImage(docker: Docker, tag: string): Promise<DebootstrapImage | undefined> {
  try {
    const info = await docker.getImage(tag).inspect();
    const labels = info.Config?.Labels ?? {};
    return { id: info.Id, tag, mirror: labels[`${LABEL_PREFIX}.mirror`] ?? "", created: labels[`${LABEL_PREFIX}.created`] ?? info.Created };
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404) return undefined;
    throw error;
  }
}

type Inputs = { suite: string; variant: string; include: string[]; components: string[]; mirror: string };

async function buildAndImport(docker: Docker, inputs: Inputs, tag: string, debCache: string, io: DebootstrapIo): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new KilnError("E_MISSING_TOOL", "debootstrap sources need root (debootstrap creates device nodes and chroots)", {
      hint: "run kiln as root, or build the base once as root and use it as an image source",
    });
  }
  const work = await mkdtemp(join(tmpdir(), "kiln-debootstrap-"));
  const root = join(work, "rootfs");
  try {
    const args = [
      `--variant=${inputs.variant}`,
      `--components=${inputs.components.join(",")}`,
      `--cache-dir=${debCache}`,
      ...(inputs.include.length > 0 ? [`--include=${inputs.include.join(",")}`] : []),
      inputs.suite,
      root,
      inputs.mirror,
    ];
    await runTool("debootstrap", args, io, "install it: apt-get install debootstrap");
    await rm(join(root, "var/cache/apt/archives"), { recursive: true, force: true }).then(() => mkdir(join(root, "var/cache/apt/archives/partial"), { recursive: true }));
    await importTree(docker, root, tag, inputs, io.signal);
  } finally {
    await unmountBelow(work);
    await rm(work, { recursive: true, force: true });
  }
}

async function importTree(docker: Docker, root: string, tag: string, inputs: Inputs, signal?: AbortSignal): Promise<void> {
  const tar = spawn("tar", ["--numeric-owner", "-C", root, "-c", "."], { stdio: ["ignore", "pipe", "inherit"], ...(signal ? { signal } : {}) });
  const [repo, version] = tag.split(":") as [string, string];
  const labels = {
    "dev.kiln.source": `debootstrap:${inputs.suite}/${inputs.variant}`,
    [`${LABEL_PREFIX}.suite`]: inputs.suite,
    [`${LABEL_PREFIX}.variant`]: inputs.variant,
    [`${LABEL_PREFIX}.include`]: inputs.include.join(","),
    [`${LABEL_PREFIX}.mirror`]: inputs.mirror,
    [`${LABEL_PREFIX}.created`]: new Date().toISOString(),
  };
  const changes = [
    ...Object.entries(labels).map(([name, value]) => `LABEL ${name}=${JSON.stringify(value)}`),
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  ];
  const response = await docker.importImage(tar.stdout, { repo, tag: version, changes } as object);
  await new Promise<void>((resolve, reject) =>
    docker.modem.followProgress(response, (error: Error | null, output: { error?: string }[]) => {
      const failed = output?.find((item) => item.error);
      if (error || failed) reject(new KilnError("E_SOURCE", `docker import of ${tag} failed: ${error?.message ?? failed?.error}`));
      else resolve();
    }),
  );
}

function runTool(command: string, args: string[], io: DebootstrapIo, installHint: string): Promise<void> {
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

import { execFile } from "node:child_process";
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, symlink, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import {
  buildRootfs,
  DEBOOTSTRAP_LABEL_PREFIX,
  type DebootstrapRecipe,
  defaultCacheDir,
  describeRecipe,
  extractRootfs,
  findRootfs,
  type ResolvedRecipe,
  resolveRecipe,
  rootfsLabels,
} from "../src/index.js";

const execFileAsync = promisify(execFile);

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "kiln-debootstrap-test-"));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Nothing listens on the discard port: a build that starts by mistake fails at once instead of downloading Debian. */
const MIRROR = "http://127.0.0.1:9/debian";
const recipe: DebootstrapRecipe = { suite: "bookworm", include: ["python3", "ca-certificates"], mirror: MIRROR };

/** A cache directory holding a tree for `resolved` as a finished build leaves it: `<key>/rootfs.tar` and `<key>/meta.json`. */
async function cachedTree(resolved: ResolvedRecipe, created: string): Promise<{ cacheDir: string; tree: string }> {
  const dir = await tempDir();
  const tree = join(dir, "tree");
  await mkdir(join(tree, "etc"), { recursive: true });
  await mkdir(join(tree, "srv", "app"), { recursive: true });
  await writeFile(join(tree, "etc", "os-release"), 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n');
  await writeFile(join(tree, "srv", "app", "config"), "secret=1\n");
  await chmod(join(tree, "srv", "app"), 0o750);
  await chmod(join(tree, "srv", "app", "config"), 0o640);
  await symlink("../srv/app/config", join(tree, "etc", "app.conf"));
  const cacheDir = join(dir, "cache");
  await mkdir(join(cacheDir, resolved.key), { recursive: true });
  // Owned by 1234:5678 under the names "daemon", which are other ids on this host (1:1), as in a tree built elsewhere.
  const owner = ["--owner=daemon:1234", "--group=daemon:5678"];
  await execFileAsync("tar", [...owner, "-C", tree, "-cf", join(cacheDir, resolved.key, "rootfs.tar"), "."]);
  await writeFile(join(cacheDir, resolved.key, "meta.json"), `${JSON.stringify({ ...resolved, created })}\n`);
  return { cacheDir, tree };
}

describe("resolveRecipe", () => {
  it("fills in the defaults for a recipe with a mirror: minbase, main, include sorted, this machine's arch", async () => {
    const resolved = await resolveRecipe(recipe);
    expect(resolved).toEqual({
      suite: "bookworm",
      variant: "minbase",
      include: ["ca-certificates", "python3"],
      components: ["main"],
      mirror: MIRROR,
      arch: process.arch,
      key: expect.stringMatching(/^[0-9a-f]{16}$/),
    });
    expect(recipe.include).toEqual(["python3", "ca-certificates"]);
  });

  it("gives equal recipes the same key, and a recipe that differs in anything that changes the tree another key", async () => {
    const key = async (changes: Partial<DebootstrapRecipe>) => (await resolveRecipe({ ...recipe, ...changes })).key;
    const base = await key({});
    expect(await key({})).toBe(base);
    expect(await key({ include: ["ca-certificates", "python3"] })).toBe(base);
    expect(await key({ variant: "minbase", components: ["main"] })).toBe(base);

    const others = [
      await key({ include: ["python3"] }),
      await key({ include: ["python3", "ca-certificates", "curl"] }),
      await key({ include: [] }),
      await key({ suite: "trixie" }),
      await key({ variant: "buildd" }),
      await key({ components: ["main", "contrib"] }),
      await key({ mirror: "http://127.0.0.1:9/other-debian" }),
    ];
    expect(others).not.toContain(base);
    expect(new Set(others).size).toBe(others.length);
  });

  it("takes the Debian mirror from the host's apt sources when the recipe names none, not the security archive", async () => {
    const resolved = await resolveRecipe({ suite: "bookworm" });
    expect(resolved.mirror).toBe("http://deb.debian.org/debian");
    expect(resolved).toMatchObject({ suite: "bookworm", variant: "minbase", include: [], components: ["main"] });
    expect((await resolveRecipe({ suite: "bookworm", mirror: "http://deb.debian.org/debian" })).key).toBe(resolved.key);
  });
});

describe("describeRecipe and rootfsLabels", () => {
  it("describes a recipe as debootstrap <suite>/<variant>", () => {
    expect(describeRecipe({ suite: "bookworm" })).toBe("debootstrap bookworm/minbase");
    expect(describeRecipe({ suite: "trixie", variant: "buildd", include: ["gcc"] })).toBe("debootstrap trixie/buildd");
  });

  it("labels a tree with its suite, variant, packages, mirror and build time", async () => {
    const resolved = await resolveRecipe(recipe);
    const labels = rootfsLabels({ recipe: resolved, tarball: "/cache/x/rootfs.tar", created: "2025-05-20T10:00:00.000Z" });
    expect(labels).toEqual({
      "dev.kiln.debootstrap.suite": "bookworm",
      "dev.kiln.debootstrap.variant": "minbase",
      "dev.kiln.debootstrap.include": "ca-certificates,python3",
      "dev.kiln.debootstrap.mirror": MIRROR,
      "dev.kiln.debootstrap.created": "2025-05-20T10:00:00.000Z",
    });
    expect(Object.keys(labels).every((name) => name.startsWith(`${DEBOOTSTRAP_LABEL_PREFIX}.`))).toBe(true);
    expect(rootfsLabels({ recipe: { ...resolved, include: [] }, tarball: "", created: "" })[`${DEBOOTSTRAP_LABEL_PREFIX}.include`]).toBe(
      "",
    );
  });
});

describe("defaultCacheDir", () => {
  it("uses $KILN_CACHE_DIR, else $XDG_CACHE_HOME/kiln, else ~/.cache/kiln", () => {
    onTestFinished(() => void vi.unstubAllEnvs());
    vi.stubEnv("KILN_CACHE_DIR", "/var/cache/kiln-ci");
    vi.stubEnv("XDG_CACHE_HOME", "/home/me/.xdg-cache");
    expect(defaultCacheDir()).toBe("/var/cache/kiln-ci/debootstrap");
    vi.stubEnv("KILN_CACHE_DIR", undefined);
    expect(defaultCacheDir()).toBe("/home/me/.xdg-cache/kiln/debootstrap");
    vi.stubEnv("XDG_CACHE_HOME", undefined);
    expect(defaultCacheDir()).toBe(join(homedir(), ".cache", "kiln", "debootstrap"));
  });
});

describe("findRootfs and buildRootfs", () => {
  it("finds nothing in an empty or missing cache directory", async () => {
    const dir = await tempDir();
    expect(await findRootfs(recipe, dir)).toBeUndefined();
    expect(await findRootfs(await resolveRecipe(recipe), join(dir, "missing"))).toBeUndefined();
    expect(await readdir(dir)).toEqual([]);
  });

  it("finds a tree cached under the recipe's key, and not for another recipe", async () => {
    const resolved = await resolveRecipe(recipe);
    const { cacheDir } = await cachedTree(resolved, "2025-05-20T10:00:00.000Z");
    const expected = { recipe: resolved, tarball: join(cacheDir, resolved.key, "rootfs.tar"), created: "2025-05-20T10:00:00.000Z" };
    expect(await findRootfs(recipe, cacheDir)).toEqual(expected);
    expect(await findRootfs(resolved, cacheDir)).toEqual(expected);
    expect(await findRootfs({ ...recipe, include: ["python3"] }, cacheDir)).toBeUndefined();
  });

  it("reuses a cached tree without running debootstrap or touching the cache", async () => {
    const resolved = await resolveRecipe(recipe);
    const { cacheDir } = await cachedTree(resolved, "2025-05-20T10:00:00.000Z");
    const output: string[] = [];
    // An aborted signal: any path that waits for the build lock or starts a build would reject.
    const io = { cacheDir, signal: AbortSignal.abort(), onOutput: (line: string) => void output.push(line) };

    const rootfs = await buildRootfs(recipe, io);
    expect(rootfs).toEqual({ recipe: resolved, tarball: join(cacheDir, resolved.key, "rootfs.tar"), created: "2025-05-20T10:00:00.000Z" });
    expect(await buildRootfs(resolved, io)).toEqual(rootfs);
    expect(output).toEqual([]);
    expect(await readdir(cacheDir)).toEqual([resolved.key]);
    expect((await readdir(join(cacheDir, resolved.key))).sort()).toEqual(["meta.json", "rootfs.tar"]);
  });

  it("does not start a build when the signal is aborted and nothing is cached", async () => {
    const cacheDir = join(await tempDir(), "cache");
    const output: string[] = [];
    const error = await buildRootfs(recipe, { cacheDir, signal: AbortSignal.abort(), onOutput: (line) => void output.push(line) }).catch(
      (e: unknown) => e,
    );
    expect(error).toHaveProperty("name", "AbortError");
    expect(output).toEqual([]);
    expect(await findRootfs(recipe, cacheDir)).toBeUndefined();
  });

  it("extracts a tree into a new directory with its content, modes, symlinks and numeric owners (not the owners' names)", async () => {
    const resolved = await resolveRecipe(recipe);
    const { cacheDir } = await cachedTree(resolved, "2025-05-20T10:00:00.000Z");
    const rootfs = await buildRootfs(recipe, { cacheDir });
    const target = join(await tempDir(), "machines", "web-1", "rootfs");

    await extractRootfs(rootfs, target);
    expect(await readFile(join(target, "etc", "os-release"), "utf8")).toBe('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n');
    expect(await stat(join(target, "etc", "os-release"))).toMatchObject({ uid: 1234, gid: 5678 });
    expect(await readFile(join(target, "srv", "app", "config"), "utf8")).toBe("secret=1\n");
    const config = await stat(join(target, "srv", "app", "config"));
    expect({ uid: config.uid, gid: config.gid, mode: config.mode & 0o7777 }).toEqual({ uid: 1234, gid: 5678, mode: 0o640 });
    const app = await stat(join(target, "srv", "app"));
    expect({ uid: app.uid, gid: app.gid, mode: app.mode & 0o7777 }).toEqual({ uid: 1234, gid: 5678, mode: 0o750 });
    expect((await lstat(join(target, "etc", "app.conf"))).isSymbolicLink()).toBe(true);
    expect(await readlink(join(target, "etc", "app.conf"))).toBe("../srv/app/config");
    // The cached tarball is shared: extracting leaves it as it was.
    expect((await readdir(join(cacheDir, resolved.key))).sort()).toEqual(["meta.json", "rootfs.tar"]);
  });

  it("reports a tarball that cannot be extracted as an E_SOURCE error with tar's message", async () => {
    const resolved = await resolveRecipe(recipe);
    const dir = await tempDir();
    await writeFile(join(dir, "rootfs.tar"), "not a tar file\n");
    const error = await extractRootfs({ recipe: resolved, tarball: join(dir, "rootfs.tar"), created: "" }, join(dir, "out")).catch(
      (e: unknown) => e,
    );
    expect(error).toMatchObject({
      name: "KilnError",
      code: "E_SOURCE",
      message: expect.stringMatching(/^tar exited with code 2:\n.*tar/s),
    });
  });
});

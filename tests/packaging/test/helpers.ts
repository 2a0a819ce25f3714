import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { inject } from "vitest";

export const REPO_ROOT = resolve(import.meta.dirname, "../../..");

/** The example third-party driver: packed and installed like any package from the registry would be. */
export const THIRD_PARTY_DIR = join(REPO_ROOT, "examples/third-party-driver");

/** Every public workspace package, packed once by the global setup. */
export interface PackedPackage {
  name: string;
  version: string;
  /** Absolute path of the package in the repository. */
  dir: string;
  tarball: string;
}

export interface PackedSet {
  /** Scratch directory of this test run (tarballs, package store, caches); removed afterwards. */
  root: string;
  packages: PackedPackage[];
  /** The example third-party driver's tarball, when the example exists. */
  thirdParty?: PackedPackage;
}

declare module "vitest" {
  export interface ProvidedContext {
    packed: PackedSet;
  }
}

export function packed(): PackedSet {
  return inject("packed");
}

export function tarballOf(name: string): string {
  const found = packed().packages.find((pkg) => pkg.name === name);
  if (!found) throw new Error(`${name} was not packed: is it a public workspace package?`);
  return found.tarball;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Command line, exit code and output, for assertion messages. */
  transcript: string;
}

/**
 * Runs a command to completion, never throwing for a non-zero exit: tests assert on the code and the output. The timeout kills
 * the whole command, so a hung install fails its test instead of stalling CI.
 */
export function run(
  command: string,
  args: string[],
  options: { cwd: string; timeoutMs: number; env?: NodeJS.ProcessEnv },
): Promise<RunResult> {
  return new Promise((done) => {
    execFile(
      command,
      args,
      { cwd: options.cwd, env: options.env ?? userEnv(), timeout: options.timeoutMs, killSignal: "SIGKILL", maxBuffer: 64 << 20 },
      (error, stdout, stderr) => {
        const failure = error as (NodeJS.ErrnoException & { code?: number | string; killed?: boolean }) | null;
        const code = failure === null ? 0 : typeof failure.code === "number" ? failure.code : 1;
        const timedOut = failure?.killed ? ` (killed after ${options.timeoutMs / 1000}s)` : "";
        const transcript = `$ ${command} ${args.join(" ")}  [in ${options.cwd}]\nexit ${code}${timedOut}\n${stdout}\n${stderr}`;
        done({ code, stdout, stderr, transcript });
      },
    );
  });
}

/**
 * The environment a user's shell would have: pnpm's script variables (the workspace's package, its config) are dropped so
 * nothing of the workspace reaches the temporary projects. Registry settings a user or CI gives (`npm_config_registry`, CA
 * certificates, proxies) stay.
 */
export function userEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^(npm_package_|npm_lifecycle_|pnpm_config_|PNPM_)/i.test(key)) continue;
    if (["npm_command", "npm_execpath", "npm_node_execpath", "npm_config_user_agent", "INIT_CWD", "VITEST", "NODE_ENV"].includes(key)) {
      continue;
    }
    if (key.startsWith("VITEST_")) continue;
    env[key] = value;
  }
  return { ...env, ...extra };
}

/** A new empty project directory outside the workspace (under the OS temp dir), removed by disposing it. */
export async function tempProject(label: string): Promise<AsyncDisposable & { dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), `kiln-packaging-${label}-`));
  return { dir, [Symbol.asyncDispose]: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * Writes a project's package.json depending on the given tarballs. Every `@kiln/*` package resolves to its tarball, including
 * those only reached through other packages (with pnpm overrides and npm overrides), so nothing is fetched under a `@kiln/` name
 * from the registry.
 */
export async function writeManifest(dir: string, dependencies: string[], extraTarballs: PackedPackage[] = []): Promise<void> {
  const all = [...packed().packages, ...extraTarballs];
  const spec = (name: string) => {
    const pkg = all.find((candidate) => candidate.name === name);
    if (!pkg) throw new Error(`no tarball for ${name}`);
    return `file:${pkg.tarball}`;
  };
  const kiln = Object.fromEntries(packed().packages.map((pkg) => [pkg.name, `file:${pkg.tarball}`]));
  const manifest = {
    name: "kiln-packaging-project",
    private: true,
    type: "module",
    dependencies: Object.fromEntries(dependencies.map((name) => [name, spec(name)])),
    // npm: an override of a direct dependency must be the same spec, which it is.
    overrides: kiln,
  };
  await writeFile(join(dir, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  // pnpm reads overrides from pnpm-workspace.yaml; the file also makes the project its own root. No allowBuilds: a user has none.
  const overrides = Object.entries(kiln).map(([name, value]) => `  "${name}": "${value}"`);
  await writeFile(join(dir, "pnpm-workspace.yaml"), `overrides:\n${overrides.join("\n")}\n`);
}

export const INSTALL_TIMEOUT_MS = 5 * 60_000;

/** `pnpm install` as a user runs it, with this run's store and cache so the user's own are not touched. */
export function pnpmInstall(dir: string): Promise<RunResult> {
  const scratch = packed().root;
  return run(
    "pnpm",
    ["install", "--no-frozen-lockfile", "--store-dir", join(scratch, "pnpm-store"), "--cache-dir", join(scratch, "pnpm-cache")],
    { cwd: dir, timeoutMs: INSTALL_TIMEOUT_MS },
  );
}

/** `npm install` as a user runs it, with this run's cache. */
export function npmInstall(dir: string): Promise<RunResult> {
  return run("npm", ["install", "--no-audit", "--no-fund", "--cache", join(packed().root, "npm-cache")], {
    cwd: dir,
    timeoutMs: INSTALL_TIMEOUT_MS,
  });
}

/** What makes pnpm stop for approval: `ERR_PNPM_IGNORED_BUILDS` and its "approve-builds" advice. */
export const BUILD_PROMPT = /IGNORED_BUILDS|approve-builds|Ignored build scripts/i;

/**
 * Names of every package installed under `node_modules` (hoisted, pnpm's virtual store, nested and bundled copies), found by
 * walking real directories only, so pnpm's symlinks are not followed into loops.
 */
export async function installedPackages(dir: string): Promise<Set<string>> {
  const names = new Set<string>();
  async function walk(modules: string): Promise<void> {
    const entries = await readdir(modules, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      if (!entry.isDirectory()) continue;
      const path = join(modules, entry.name);
      if (entry.name === ".pnpm") {
        for (const store of await readdir(path, { withFileTypes: true })) {
          if (store.isDirectory()) await walk(join(path, store.name, "node_modules"));
        }
      } else if (entry.name.startsWith("@")) {
        for (const scoped of await readdir(path, { withFileTypes: true })) {
          if (scoped.isDirectory()) await visit(join(path, scoped.name), `${entry.name}/${scoped.name}`);
        }
      } else if (!entry.name.startsWith(".")) {
        await visit(path, entry.name);
      }
    }
  }
  async function visit(path: string, name: string): Promise<void> {
    if (existsSync(join(path, "package.json"))) names.add(name);
    await walk(join(path, "node_modules"));
  }
  await walk(join(dir, "node_modules"));
  return names;
}

/** Where an installed `@kiln/*` package came from: pnpm's virtual store names tarball installs `…@file+…`. */
export async function kilnPackagesNotFromTarballs(dir: string): Promise<string[]> {
  const lock = join(dir, "package-lock.json");
  if (existsSync(lock)) {
    const { packages } = JSON.parse(await readFile(lock, "utf8")) as { packages: Record<string, { resolved?: string }> };
    return Object.entries(packages)
      .filter(([path, entry]) => /node_modules\/@kiln\/[^/]+$/.test(path) && !entry.resolved?.startsWith("file:"))
      .map(([path]) => path);
  }
  const store = await readdir(join(dir, "node_modules", ".pnpm"));
  return store.filter((entry) => entry.startsWith("@kiln+") && !entry.includes("@file+"));
}

/** Removes every container and image of a bake: labelled with its run id, or (images) with the test's project name. */
export async function removeBakeResources(filters: { runId?: string; project: string }): Promise<void> {
  const cwd = REPO_ROOT;
  const ids = async (args: string[]) =>
    (await run("docker", args, { cwd, timeoutMs: 60_000 })).stdout.split("\n").filter((line) => line.trim() !== "");
  if (filters.runId !== undefined) {
    const containers = await ids(["ps", "-aq", "--filter", `label=dev.kiln.build=${filters.runId}`]);
    if (containers.length > 0) await run("docker", ["rm", "-fv", ...containers], { cwd, timeoutMs: 120_000 });
  }
  const images = new Set([
    ...(await ids(["image", "ls", "-q", "--filter", `label=dev.kiln.project=${filters.project}`])),
    ...(filters.runId === undefined ? [] : await ids(["image", "ls", "-q", "--filter", `label=dev.kiln.build=${filters.runId}`])),
  ]);
  if (images.size > 0) await run("docker", ["rmi", "-f", ...images], { cwd, timeoutMs: 120_000 });
}

/** Prints a file of the baked image, from a throwaway container. */
export async function readFromImage(image: string, path: string): Promise<RunResult> {
  return run("docker", ["run", "--rm", "--label", "dev.kiln.build=packaging-tests", image, "cat", path], {
    cwd: REPO_ROOT,
    timeoutMs: 120_000,
  });
}

/** A name unique to this test run, for projects and tags (images are found and removed by it). */
export function runScopedName(label: string): string {
  return `kiln-packaging-${label}-${process.pid}-${Date.now().toString(36)}`;
}

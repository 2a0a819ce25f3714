// Proves the plugin guides: each page's code blocks that name a file (```ts file=kiln-driver-runc/src/index.ts) are written
// into an empty directory outside the repository, installed against this workspace's packages, built, and run as the page
// says — the plugin's own conformance suite, then `kiln build` of the page's bake file, which resolves the plugin by name.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, realpath, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, isAbsolute, join, normalize, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LABELS, PLUGIN_API_VERSION } from "@kiln/core";
import { ensureFixtureImage } from "@kiln/driver-docker/testing";

const repo = resolve(import.meta.dirname, "../..");

/** A code block of a page that says which file it is. */
interface PageFile {
  /** Path relative to the directory the page's reader works in, e.g. `kiln-driver-runc/src/index.ts`. */
  path: string;
  content: string;
}

/** The blocks of a page whose info string names a file: ```ts file=src/index.ts. */
function pageFiles(markdown: string): PageFile[] {
  const files: PageFile[] = [];
  for (const match of markdown.matchAll(/^```[\w-]*[ \t]+([^\n]*)\n([\s\S]*?)^```[ \t]*$/gm)) {
    const path = /(?:^|\s)file=(\S+)/.exec(match[1] ?? "")?.[1];
    if (path === undefined) continue;
    if (isAbsolute(path) || normalize(path).startsWith("..")) throw new Error(`file=${path}: a page's files stay inside its directory`);
    if (files.some((file) => file.path === path)) throw new Error(`file=${path} appears twice`);
    files.push({ path, content: match[2] ?? "" });
  }
  return files;
}

interface Finished {
  stdout: string;
  stderr: string;
}

/**
 * Runs a command to completion within `timeoutMs`, in a process group of its own: at the deadline the whole group is killed
 * (a hung vitest worker or runc included), so a hang fails the test. Rejects with the output when it exits non-zero.
 */
function run(
  command: string,
  args: string[],
  options: { cwd: string; timeoutMs: number; env?: Record<string, string> },
): Promise<Finished> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: { ...process.env, ...options.env }, detached: true });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
    }, options.timeoutMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      const what = `${command} ${args.join(" ")} (in ${options.cwd})`;
      if (timedOut) reject(new Error(`${what} did not finish within ${options.timeoutMs / 1000}s\n${stdout}\n${stderr}`));
      else if (code !== 0) reject(new Error(`${what} exited with ${code}\n${stdout}\n${stderr}`));
      else resolveRun({ stdout, stderr });
    });
  });
}

/** Every package of this workspace by name: what a page's `@kiln/*` dependencies are linked to. */
async function workspacePackages(): Promise<Map<string, { dir: string; version: string }>> {
  const packages = new Map<string, { dir: string; version: string }>();
  for (const parent of ["packages", "packages/drivers", "packages/provisioners", "apps"]) {
    for (const entry of await readdir(join(repo, parent))) {
      const manifest = await readFile(join(repo, parent, entry, "package.json"), "utf8").catch(() => undefined);
      if (!manifest) continue;
      const { name, version } = JSON.parse(manifest) as { name: string; version: string };
      packages.set(name, { dir: join(repo, parent, entry), version });
    }
  }
  return packages;
}

/** Whether `version` satisfies a caret range such as `^4.1.0` (or `^0.1.0`, where the minor version must match). */
function satisfiesCaret(range: string, version: string): boolean {
  const wanted = /^\^(\d+)\.(\d+)\.(\d+)$/.exec(range)?.slice(1).map(Number);
  const have = /^(\d+)\.(\d+)\.(\d+)/.exec(version)?.slice(1).map(Number);
  if (!wanted || !have) return false;
  const [major, minor, patch] = wanted as [number, number, number];
  const [haveMajor, haveMinor, havePatch] = have as [number, number, number];
  if (haveMajor !== major || (major === 0 && haveMinor !== minor)) return false;
  return haveMinor > minor || (haveMinor === minor && havePatch >= patch);
}

/**
 * Points a page's package.json at this workspace: each dependency the page names from the registry (`^0.1.0`) becomes a
 * `link:` to the workspace's package, or to the copy this test package installed, after checking the page's range admits
 * it. `link:` paths the page writes itself (its plugin, next door) stay. Peer ranges are left as the page wrote them.
 */
async function linkToWorkspace(manifestPath: string): Promise<void> {
  const workspace = await workspacePackages();
  const manifest = JSON.parse(await readFile(manifestPath, "utf8")) as Record<string, Record<string, string> | undefined>;
  for (const field of ["dependencies", "devDependencies"]) {
    const dependencies = manifest[field] ?? {};
    for (const [name, range] of Object.entries(dependencies)) {
      if (range.startsWith("link:")) continue;
      const own = workspace.get(name);
      const dir = own?.dir ?? (await realpath(join(import.meta.dirname, "node_modules", name)));
      const version = own?.version ?? (JSON.parse(await readFile(join(dir, "package.json"), "utf8")) as { version: string }).version;
      if (!satisfiesCaret(range, version)) throw new Error(`${manifestPath}: ${name} ${range} does not admit this workspace's ${version}`);
      if (name === "vitest" && dir !== (await realpath(join(workspace.get("@kiln/test-suite")?.dir ?? "", "node_modules", "vitest"))))
        throw new Error("the suite's vitest and the page's must be one copy: a second copy collects no tests (pnpm install in the repo)");
      dependencies[name] = `link:${dir}`;
    }
  }
  await writeFile(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
}

/** Writes a page's files under `root`, links every package.json among them to the workspace, and installs each. */
async function materialise(page: string, root: string): Promise<PageFile[]> {
  const files = pageFiles(await readFile(join(repo, "docs", page), "utf8"));
  for (const file of files) {
    await mkdir(dirname(join(root, file.path)), { recursive: true });
    await writeFile(join(root, file.path), file.content);
  }
  for (const file of files.filter((item) => item.path.endsWith("/package.json"))) {
    await linkToWorkspace(join(root, file.path));
    // Outside any workspace, with no lockfile (CI=true would otherwise demand one) and nothing from the network.
    await run("pnpm", ["install", "--offline", "--ignore-workspace", "--no-frozen-lockfile"], {
      cwd: dirname(join(root, file.path)),
      timeoutMs: 120_000,
    });
  }
  return files;
}

interface VitestReport {
  numFailedTests: number;
  testResults: { assertionResults: { title: string; status: string; failureMessages: string[] }[] }[];
}

/** Runs a plugin's test script as the page says (`vitest run`), and returns each test's title by its status. */
async function conformance(pluginDir: string, env: Record<string, string>, timeoutMs: number): Promise<Record<string, string[]>> {
  const report = join(pluginDir, "vitest-report.json");
  await run("pnpm", ["exec", "vitest", "run", "--reporter=default", "--reporter=json", `--outputFile.json=${report}`], {
    cwd: pluginDir,
    env,
    timeoutMs,
  }).catch(async (error: Error) => {
    // The report says which tests failed and why; the raw output is the fallback.
    const failed = await readFile(report, "utf8").then(
      (text) =>
        (JSON.parse(text) as VitestReport).testResults.flatMap((file) => file.assertionResults.filter((t) => t.status === "failed")),
      () => [],
    );
    throw failed.length > 0 ? new Error(failed.map((t) => `${t.title}: ${t.failureMessages.join("\n")}`).join("\n\n")) : error;
  });
  const byStatus: Record<string, string[]> = {};
  for (const file of (JSON.parse(await readFile(report, "utf8")) as VitestReport).testResults) {
    for (const test of file.assertionResults) byStatus[test.status] = [...(byStatus[test.status] ?? []), test.title];
  }
  return byStatus;
}

interface Manifest {
  run_id: string;
  ok: boolean;
  builds: { image: string; status: string; artifact_id: string; parent_id: string | null; tags: string[] }[];
}

const readManifest = async (dir: string) => JSON.parse(await readFile(join(dir, "kiln-manifest.json"), "utf8")) as Manifest;

interface PluginsReport {
  plugins: { kind: string; name: string; status: string; package?: string; apiVersion?: number }[];
}

let scratch: string;
beforeAll(async () => {
  // On a tmpfs where there is one: the driver unpacks and captures a 200 MB tree for almost every test, and removing trees
  // from this disk costs seconds each.
  scratch = await mkdtemp(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "kiln-docs-"));
});
afterAll(() => rm(scratch, { recursive: true, force: true }));

describe("docs/writing-a-driver.md", () => {
  let root: string;
  /** Where the page's driver keeps artefacts and bundles, removed with the scratch directory. */
  let env: Record<string, string>;

  beforeAll(async () => {
    root = join(scratch, "driver");
    env = { TMPDIR: join(scratch, "driver-tmp"), KILN_STATE_DIR: join(scratch, "driver-state") };
    await mkdir(env.TMPDIR as string, { recursive: true });
    const files = await materialise("writing-a-driver.md", root);
    expect(files.map((file) => file.path)).toEqual(
      expect.arrayContaining([
        "kiln-driver-runc/package.json",
        "kiln-driver-runc/src/index.ts",
        "kiln-driver-runc/test/conformance.test.ts",
        "my-images/package.json",
        "my-images/kiln.yaml",
      ]),
    );
    await run("pnpm", ["run", "build"], { cwd: join(root, "kiln-driver-runc"), timeoutMs: 120_000 });
  }, 300_000);

  // A run killed at its deadline cannot remove its containers: delete those whose bundle is in this test's scratch directory.
  afterAll(async () => {
    const listed = await run("runc", ["list", "--format", "json"], { cwd: scratch, timeoutMs: 30_000 });
    const containers = (JSON.parse(listed.stdout || "[]") ?? []) as { id: string; bundle: string }[];
    for (const container of containers.filter((item) => item.bundle.startsWith(scratch)))
      await run("runc", ["delete", "--force", container.id], { cwd: scratch, timeoutMs: 30_000 });
  }, 120_000);

  it("type-checks, the conformance test included", async () => {
    await run("pnpm", ["run", "typecheck"], { cwd: join(root, "kiln-driver-runc"), timeoutMs: 120_000 });
  }, 150_000);

  it("passes the conformance suite; only the host-ports test is skipped, as the driver declares none", async () => {
    const tests = await conformance(join(root, "kiln-driver-runc"), env, 600_000);
    expect(tests.failed ?? []).toEqual([]);
    expect(tests.skipped ?? []).toEqual(["makes asked-for ports reachable from the host (if the driver supports it)"]);
    expect((tests.passed ?? []).length).toBeGreaterThanOrEqual(20);
  }, 660_000);

  it("kiln build resolves driver: runc to the package, bakes the parent and the child on it, then finds both cached", async () => {
    const project = join(root, "my-images");
    await run("pnpm", ["exec", "kiln", "build"], { cwd: project, env, timeoutMs: 300_000 });
    const baked = await readManifest(project);
    const base = baked.builds.find((build) => build.image === "base");
    const app = baked.builds.find((build) => build.image === "app");
    expect(baked.ok).toBe(true);
    expect([base?.status, app?.status]).toEqual(["baked", "baked"]);
    expect(app?.parent_id).toBe(base?.artifact_id);
    expect(app?.tags).toEqual(["app:latest"]);

    // The artefact is a tarball in the driver's store: the child holds what its own step wrote from the parent's file.
    const tarball = join(env.KILN_STATE_DIR as string, "driver-runc", "artifacts", app?.artifact_id ?? "?", "rootfs.tar");
    const motd = await run("tar", ["-xOf", tarball, "./srv/app/motd"], { cwd: project, timeoutMs: 60_000 });
    expect(motd.stdout).toBe("baked by kiln-driver-runc\n");

    // Nothing of the run is left: no container, no bundle.
    const containers = await run("runc", ["list", "--quiet"], { cwd: project, timeoutMs: 30_000 });
    expect(containers.stdout.split("\n").filter((id) => id.includes(baked.run_id))).toEqual([]);
    const bundles = await readdir(join(env.TMPDIR as string, "kiln-runc")).catch(() => []);
    expect(bundles.filter((name) => name.includes(baked.run_id))).toEqual([]);

    const plugins = JSON.parse((await run("pnpm", ["exec", "kiln", "plugins", "--json"], { cwd: project, env, timeoutMs: 60_000 })).stdout);
    expect((plugins as PluginsReport).plugins.find((plugin) => plugin.kind === "driver" && plugin.name === "runc")).toMatchObject({
      status: "ok",
      package: "kiln-driver-runc",
      apiVersion: PLUGIN_API_VERSION,
    });

    // The option descriptions the page writes reach the bake file's JSON Schema (editor hints).
    const schema = await run("pnpm", ["exec", "kiln", "schema"], { cwd: project, env, timeoutMs: 60_000 });
    expect(schema.stdout).toContain("The Debian tree to start from");

    // Same inputs, same bake keys: the driver finds its artefacts by the dev.kiln.key label and nothing is baked again.
    await run("pnpm", ["exec", "kiln", "build"], { cwd: project, env, timeoutMs: 120_000 });
    expect((await readManifest(project)).builds.map((build) => [build.image, build.status, build.artifact_id])).toEqual([
      ["base", "cached", base?.artifact_id],
      ["app", "cached", app?.artifact_id],
    ]);
  }, 480_000);
});

describe("docs/writing-a-provisioner.md", () => {
  let root: string;
  let env: Record<string, string>;
  /** Run ids of the page's bakes: every image they made carries one in dev.kiln.build, and is removed afterwards. */
  const runIds: string[] = [];

  beforeAll(async () => {
    root = join(scratch, "provisioner");
    env = { TMPDIR: join(scratch, "provisioner-tmp"), KILN_STATE_DIR: join(scratch, "provisioner-state") };
    await mkdir(env.TMPDIR as string, { recursive: true });
    const files = await materialise("writing-a-provisioner.md", root);
    expect(files.map((file) => file.path)).toEqual(
      expect.arrayContaining([
        "kiln-provisioner-dotfiles/package.json",
        "kiln-provisioner-dotfiles/src/index.ts",
        "kiln-provisioner-dotfiles/test/conformance.test.ts",
        "my-workstation/package.json",
        "my-workstation/kiln.yaml",
      ]),
    );
    await run("pnpm", ["run", "build"], { cwd: join(root, "kiln-provisioner-dotfiles"), timeoutMs: 120_000 });
    // The bake below starts from the image the conformance suite's Docker machines use (built once with debootstrap).
    await ensureFixtureImage();
  }, 600_000);

  afterAll(async () => {
    for (const runId of runIds) {
      const images = await run("docker", ["images", "--quiet", "--filter", `label=${LABELS.build}=${runId}`], {
        cwd: root,
        timeoutMs: 60_000,
      });
      const ids = [...new Set(images.stdout.split("\n").filter(Boolean))];
      if (ids.length > 0) await run("docker", ["rmi", "--force", ...ids], { cwd: root, timeoutMs: 120_000 });
    }
  }, 300_000);

  it("type-checks, the conformance test included", async () => {
    await run("pnpm", ["run", "typecheck"], { cwd: join(root, "kiln-provisioner-dotfiles"), timeoutMs: 120_000 });
  }, 150_000);

  it("passes the conformance suite on a container and on an SSH login that is not root", async () => {
    const tests = await conformance(join(root, "kiln-provisioner-dotfiles"), env, 600_000);
    expect(tests.failed ?? []).toEqual([]);
    expect(tests.skipped ?? []).toEqual([]);
    expect((tests.passed ?? []).length).toBeGreaterThanOrEqual(8);
  }, 660_000);

  it("kiln build finds the dotfiles step by name and verifies; plan sees an edited script; validate refuses a secret in install", async () => {
    const project = join(root, "my-workstation");
    const variables = ["--var", "base_image=kiln-fixture/debian:bookworm"];
    const build = run("pnpm", ["exec", "kiln", "build", ...variables], {
      cwd: project,
      env,
      timeoutMs: 300_000,
    });
    await build.finally(async () => {
      const manifest = await readManifest(project).catch(() => undefined);
      if (manifest) runIds.push(manifest.run_id);
    });
    const baked = await readManifest(project);
    expect(baked.ok).toBe(true);
    expect(baked.builds.map((item) => [item.image, item.status])).toEqual([["workstation", "baked"]]);

    const plugins = JSON.parse((await run("pnpm", ["exec", "kiln", "plugins", "--json"], { cwd: project, env, timeoutMs: 60_000 })).stdout);
    expect((plugins as PluginsReport).plugins.find((plugin) => plugin.kind === "provisioner" && plugin.name === "dotfiles")).toMatchObject({
      status: "ok",
      package: "kiln-provisioner-dotfiles",
      apiVersion: PLUGIN_API_VERSION,
    });
    const schema = await run("pnpm", ["exec", "kiln", "schema"], { cwd: project, env, timeoutMs: 60_000 });
    expect(schema.stdout).toContain("The account whose home directory gets the files");

    // The fingerprint is the directory's content: an edited script rebakes the image, a touched file does not.
    const plan = () => run("pnpm", ["exec", "kiln", "plan", ...variables], { cwd: project, env, timeoutMs: 60_000 });
    const script = join(project, "dotfiles", "install.sh");
    const original = await readFile(script, "utf8");
    await writeFile(script, `${original}# edited\n`);
    expect((await plan()).stdout).toMatch(/workstation\s+bake: provision\[1\] dotfiles changed/);
    await writeFile(script, original);
    expect((await plan()).stdout).toMatch(/workstation\s+cached/);

    // `install` is declared exposed: a sensitive variable there is refused before anything runs, at its position.
    await writeFile(
      join(project, "secret.yaml"),
      `variables:\n  token: { sensitive: true, default: s3cret-value }\nimages:\n  workstation:\n    driver: docker\n` +
        `    source: debian:bookworm-slim\n    provision:\n      - dotfiles: { user: root, source: ./dotfiles, install: "echo {{ token }}" }\n`,
    );
    const refused = await run("pnpm", ["exec", "kiln", "validate", "-f", "secret.yaml"], { cwd: project, env, timeoutMs: 60_000 }).then(
      () => "accepted",
      (error: Error) => error.message,
    );
    expect(refused).toMatch(/exited with 2[\s\S]*secret\.yaml:8:\d+: images\.workstation\.provision\[0\]\.dotfiles\.install: sensitive/);
    expect(refused).not.toContain("s3cret-value");
  }, 360_000);
});

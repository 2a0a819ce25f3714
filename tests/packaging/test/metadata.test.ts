import { existsSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { type PackedPackage, packed, REPO_ROOT, run } from "./helpers.ts";

interface Manifest {
  name: string;
  version?: string;
  private?: boolean;
  description?: string;
  keywords?: string[];
  license?: string;
  repository?: { type?: string; url?: string; directory?: string };
  type?: string;
  bin?: Record<string, string>;
  exports?: Record<string, string | Record<string, string>>;
  files?: string[];
  engines?: { node?: string };
  publishConfig?: { access?: string };
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  optionalDependencies?: Record<string, string>;
  bundleDependencies?: string[];
}

const DEPENDENCY_FIELDS = ["dependencies", "devDependencies", "peerDependencies", "optionalDependencies"] as const;
const REPOSITORY_URL = "git+https://github.com/kiln-dev/kiln.git";
/** The range plugins accept core in: any 0.x, so a core minor does not force a release of every plugin (see docs/releasing.md). */
const CORE_PEER_RANGE = ">=0.1.0 <1.0.0";

/** The manifest and file list `pnpm pack` wrote: what the registry would serve. */
async function readTarball(pkg: PackedPackage): Promise<{ manifest: Manifest; files: string[] }> {
  const listing = await run("tar", ["-tzf", pkg.tarball], { cwd: REPO_ROOT, timeoutMs: 60_000 });
  const manifest = await run("tar", ["-xzOf", pkg.tarball, "package/package.json"], { cwd: REPO_ROOT, timeoutMs: 60_000 });
  if (listing.code !== 0 || manifest.code !== 0)
    throw new Error(`cannot read ${pkg.tarball}:\n${listing.transcript}\n${manifest.transcript}`);
  return {
    manifest: JSON.parse(manifest.stdout) as Manifest,
    files: listing.stdout.split("\n").map((line) => line.replace(/^package\//, "")),
  };
}

/** Targets of the exports map and bin: files the tarball must hold. */
function entryFiles(manifest: Manifest): string[] {
  const targets = Object.values(manifest.exports ?? {}).flatMap((entry) => (typeof entry === "string" ? [entry] : Object.values(entry)));
  return [...targets, ...Object.values(manifest.bin ?? {})].map((target) => target.replace(/^\.\//, ""));
}

/** Every problem with one public package's published form, each naming the package and the field. */
async function problemsOf(pkg: PackedPackage, privateNames: Set<string>): Promise<string[]> {
  const { manifest, files } = await readTarball(pkg);
  const problems: string[] = [];
  const problem = (field: string, text: string) => problems.push(`${pkg.name}: ${field} ${text}`);
  const directory = relative(REPO_ROOT, pkg.dir);

  if (!manifest.description?.trim()) problem("description", "is missing");
  if (!Array.isArray(manifest.keywords) || manifest.keywords.length === 0) problem("keywords", "is missing");
  if (manifest.license !== "MIT") problem("license", `is ${JSON.stringify(manifest.license)}, not "MIT"`);
  if (manifest.repository?.type !== "git" || manifest.repository.url !== REPOSITORY_URL) {
    problem("repository", `must be { type: "git", url: "${REPOSITORY_URL}" }`);
  }
  if (manifest.repository?.directory !== directory) problem("repository.directory", `must be "${directory}"`);
  if (manifest.type !== "module") problem("type", `must be "module"`);
  if (!manifest.exports || Object.keys(manifest.exports).length === 0) problem("exports", "is missing");
  else if (!manifest.exports["./package.json"]) problem("exports", `has no "./package.json"`);
  if (!Array.isArray(manifest.files) || manifest.files.length === 0) problem("files", "is missing");
  if (!manifest.engines?.node) problem("engines.node", "is missing");
  if (manifest.publishConfig?.access !== "public")
    problem("publishConfig.access", `must be "public" (a scoped package is private by default)`);
  if (!existsSync(join(pkg.dir, "README.md"))) problem("README.md", "is missing");
  else if (!files.includes("README.md")) problem("README.md", "is not in the tarball");
  for (const target of entryFiles(manifest)) {
    if (!files.includes(target)) problem("exports/bin", `points to ${target}, which is not in the tarball (not built, or not in files)`);
  }

  for (const field of DEPENDENCY_FIELDS) {
    for (const [name, range] of Object.entries(manifest[field] ?? {})) {
      if (/^(workspace|catalog):/.test(range)) problem(`${field}.${name}`, `was published as "${range}"`);
      if (privateNames.has(name)) problem(`${field}.${name}`, "names a private package, which is never published");
    }
  }
  for (const [name, range] of Object.entries(manifest.peerDependencies ?? {})) {
    // A tilde peer (~4.1.12) turns every consumer's newer minor into a peer conflict.
    if (range.startsWith("~")) problem(`peerDependencies.${name}`, `is "${range}": use a caret or wider range`);
  }
  if (pkg.name !== "@kiln/core" && pkg.name !== "@kiln/cli") {
    if (manifest.dependencies?.["@kiln/core"]) problem("dependencies.@kiln/core", "must be a peer: a plugin uses the project's core");
    if (manifest.peerDependencies?.["@kiln/core"] !== CORE_PEER_RANGE) {
      problem("peerDependencies.@kiln/core", `is ${JSON.stringify(manifest.peerDependencies?.["@kiln/core"])}, not "${CORE_PEER_RANGE}"`);
    }
  }
  return problems;
}

const packages = packed().packages;

describe("published metadata", () => {
  it.each(packages.map((pkg) => [pkg.name, pkg] as const))("%s has every field a user's npm page and installer need", async (_, pkg) => {
    expect(await problemsOf(pkg, await privateWorkspaceNames())).toEqual([]);
  });

  it("the CLI depends on core and log-update only, and lists every first-party plugin as an optional peer", async () => {
    const cli = packages.find((pkg) => pkg.name === "@kiln/cli");
    expect(cli, "@kiln/cli is packed").toBeDefined();
    const { manifest } = await readTarball(cli as PackedPackage);
    expect(Object.keys(manifest.dependencies ?? {}).sort()).toEqual(["@kiln/core", "log-update"]);
    const plugins = packages.map((pkg) => pkg.name).filter((name) => /^@kiln\/(driver|provisioner)-/.test(name));
    const notOptional = plugins.filter((name) => !manifest.peerDependencies?.[name] || !manifest.peerDependenciesMeta?.[name]?.optional);
    expect(notOptional, "plugins the CLI does not list as optional peers").toEqual([]);
  });

  it("the packages that reach dockerode or ssh2 bundle them, so installers run none of their build scripts", async () => {
    const bundles: Record<string, string[]> = {};
    for (const name of ["@kiln/driver-docker", "@kiln/communicator-ssh"]) {
      const pkg = packages.find((candidate) => candidate.name === name) as PackedPackage;
      const { manifest, files } = await readTarball(pkg);
      bundles[name] = (manifest.bundleDependencies ?? []).filter((dep) => files.includes(`node_modules/${dep}/package.json`));
    }
    expect(bundles).toEqual({ "@kiln/driver-docker": ["dockerode"], "@kiln/communicator-ssh": ["node-ssh", "ssh2"] });
  });
});

let privateNames: Promise<Set<string>> | undefined;

/** Names of the workspace's private packages (the EC2 emulator, examples, these tests), asked of pnpm once. */
function privateWorkspaceNames(): Promise<Set<string>> {
  privateNames ??= run("pnpm", ["ls", "-r", "--depth", "-1", "--json"], { cwd: REPO_ROOT, timeoutMs: 60_000 }).then((listing) => {
    const workspace = JSON.parse(listing.stdout) as { name: string; private: boolean }[];
    return new Set(workspace.filter((pkg) => pkg.private).map((pkg) => pkg.name));
  });
  return privateNames;
}

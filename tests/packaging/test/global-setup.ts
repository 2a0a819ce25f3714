import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import type { TestProject } from "vitest/node";
import { ensureFixtureImage } from "@kiln/driver-docker/testing";
import { REPO_ROOT, run, THIRD_PARTY_DIR, type PackedPackage, type PackedSet } from "./helpers.ts";

interface WorkspacePackage {
  name: string;
  version?: string;
  path: string;
  private: boolean;
}

interface PackResult {
  name: string;
  version: string;
  filename: string;
}

/**
 * Packs every public workspace package (and the example third-party driver) once with `pnpm pack`, exactly what `pnpm publish`
 * would upload, into a scratch directory the test files share with a package store and caches. Also makes sure the Docker
 * fixture image the bakes start from exists (built with debootstrap once per machine).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const root = await mkdtemp(join(tmpdir(), "kiln-packaging-"));
  const teardown = () => rm(root, { recursive: true, force: true });
  try {
    // The installs run the repository's pnpm: another version may handle bundled dependencies or build approval differently.
    const { packageManager } = JSON.parse(await readFile(join(REPO_ROOT, "package.json"), "utf8")) as { packageManager: string };
    const wanted = packageManager.replace(/^pnpm@/, "");
    const version = await run("pnpm", ["--version"], { cwd: REPO_ROOT, timeoutMs: 30_000 });
    if (version.stdout.trim() !== wanted)
      throw new Error(`pnpm ${version.stdout.trim()} found, the repository uses ${wanted}: bash scripts/bootstrap.sh`);
    const listing = await run("pnpm", ["ls", "-r", "--depth", "-1", "--json"], { cwd: REPO_ROOT, timeoutMs: 60_000 });
    if (listing.code !== 0) throw new Error(`listing the workspace failed:\n${listing.transcript}`);
    const workspace = JSON.parse(listing.stdout) as WorkspacePackage[];
    const publicPackages = workspace.filter((pkg) => !pkg.private);
    for (const pkg of publicPackages) {
      const manifest = JSON.parse(await readFile(join(pkg.path, "package.json"), "utf8")) as { files?: string[] };
      const missing = (manifest.files ?? []).filter((entry) => !existsSync(join(pkg.path, entry)));
      if (missing.length > 0) {
        throw new Error(`${pkg.name}: ${missing.join(", ")} missing — build first: pnpm exec turbo run build --filter=${pkg.name}`);
      }
    }

    const tarballs = join(root, "tarballs");
    await mkdir(tarballs);
    const filters = publicPackages.flatMap((pkg) => ["--filter", pkg.name]);
    const packing = await run("pnpm", ["-r", ...filters, "pack", "--pack-destination", tarballs, "--json"], {
      cwd: REPO_ROOT,
      timeoutMs: 5 * 60_000,
    });
    if (packing.code !== 0) throw new Error(`pnpm pack failed:\n${packing.transcript}`);
    const results = [JSON.parse(packing.stdout) as PackResult | PackResult[]].flat();
    const packages: PackedPackage[] = publicPackages.map((pkg) => {
      const result = results.find((candidate) => candidate.name === pkg.name);
      if (!result) throw new Error(`pnpm pack wrote no tarball for ${pkg.name}:\n${packing.transcript}`);
      return { name: pkg.name, version: result.version, dir: pkg.path, tarball: result.filename };
    });

    const packedSet: PackedSet = { root, packages };
    if (existsSync(join(THIRD_PARTY_DIR, "package.json"))) {
      const example = await run("pnpm", ["pack", "--pack-destination", tarballs, "--json"], { cwd: THIRD_PARTY_DIR, timeoutMs: 120_000 });
      if (example.code !== 0) throw new Error(`pnpm pack of ${relative(REPO_ROOT, THIRD_PARTY_DIR)} failed:\n${example.transcript}`);
      const result = [JSON.parse(example.stdout) as PackResult | PackResult[]].flat()[0] as PackResult;
      packedSet.thirdParty = { name: result.name, version: result.version, dir: THIRD_PARTY_DIR, tarball: result.filename };
    }

    await ensureFixtureImage();
    project.provide("packed", packedSet);
  } catch (error) {
    await teardown();
    throw error;
  }
  return teardown;
}

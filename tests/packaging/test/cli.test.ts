import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { FIXTURE_IMAGE } from "@kiln/driver-docker/testing";
import { describe, expect, it } from "vitest";
import { BAKED_FILE, writeDockerBakeFile } from "./bake-file.ts";
import {
  BUILD_PROMPT,
  installedPackages,
  kilnPackagesNotFromTarballs,
  npmInstall,
  pnpmInstall,
  type RunResult,
  readFromImage,
  removeBakeResources,
  run,
  runScopedName,
  tempProject,
  writeManifest,
} from "./helpers.ts";

const KILN_TIMEOUT_MS = 5 * 60_000;

const installers: [string, (dir: string) => Promise<RunResult>][] = [
  ["pnpm", pnpmInstall],
  ["npm", npmInstall],
];

// Concurrent: the two installs and bakes are independent and mostly wait on the registry and the engine.
describe.concurrent.each(installers)("@kiln/cli installed with %s", (installer, install) => {
  it("installs without a build prompt, validates and bakes the bake file with `kiln build`", async () => {
    await using project = await tempProject(`cli-${installer}`);
    await writeManifest(project.dir, ["@kiln/cli", "@kiln/driver-docker", "@kiln/provisioner-shell"]);
    const installed = await install(project.dir);
    expect(installed.code, installed.transcript).toBe(0);
    expect(installed.stdout + installed.stderr, "the install asks for build approval").not.toMatch(BUILD_PROMPT);
    expect(await kilnPackagesNotFromTarballs(project.dir), "@kiln packages not installed from the tarballs").toEqual([]);
    // The CLI is lean: the plugins it used to bring along are installed only when the user adds them.
    const packages = await installedPackages(project.dir);
    const unasked = ["@kiln/driver-chroot", "@kiln/provisioner-file", "@kiln/driver-ec2", "@aws-sdk/client-ec2", "node-ssh"];
    expect(
      unasked.filter((name) => packages.has(name)),
      "installed though the user did not add them",
    ).toEqual([]);

    const kiln = (...args: string[]) =>
      run(join(project.dir, "node_modules/.bin/kiln"), args, { cwd: project.dir, timeoutMs: KILN_TIMEOUT_MS });
    const name = runScopedName(installer);
    const { tag } = await writeDockerBakeFile(project.dir, {
      project: name,
      source: FIXTURE_IMAGE,
      message: `baked by kiln (${installer})`,
    });
    let runId: string | undefined;
    try {
      const validate = await kiln("validate");
      expect(validate.code, validate.transcript).toBe(0);
      const build = await kiln("build");
      runId = await manifestRunId(project.dir);
      expect(build.code, build.transcript).toBe(0);
      const baked = await readFromImage(tag, BAKED_FILE);
      expect(baked.stdout.trim(), baked.transcript).toBe(`baked by kiln (${installer})`);
    } finally {
      await removeBakeResources({ ...(runId === undefined ? {} : { runId }), project: name });
    }

    // A driver the user has not installed: kiln names the package to add instead of failing on an import.
    await writeFile(
      join(project.dir, "ec2.yaml"),
      "images:\n  ami:\n    driver: ec2\n    source: ami-0123456789abcdef0\n    region: eu-west-1\n",
    );
    const missing = await kiln("validate", "-f", "ec2.yaml");
    expect(missing.code, missing.transcript).toBe(2);
    expect(missing.stdout + missing.stderr).toContain("@kiln/driver-ec2");
  });
});

/** Run id of the last `kiln build`, from the manifest it writes (what its resources are labelled with). */
async function manifestRunId(dir: string): Promise<string | undefined> {
  const text = await readFile(join(dir, "kiln-manifest.json"), "utf8").catch(() => undefined);
  return text === undefined ? undefined : (JSON.parse(text) as { run_id: string }).run_id;
}

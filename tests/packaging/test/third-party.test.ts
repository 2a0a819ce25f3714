import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { expect, it } from "vitest";
import { writeUnshareBakeFile } from "./bake-file.ts";
import {
  BUILD_PROMPT,
  kilnPackagesNotFromTarballs,
  packed,
  pnpmInstall,
  run,
  runScopedName,
  tempProject,
  THIRD_PARTY_DIR,
  userEnv,
  writeManifest,
} from "./helpers.ts";

it("the example third-party driver, installed from its tarball, bakes through `kiln build` by its name", async () => {
  const thirdParty = packed().thirdParty;
  if (!thirdParty) throw new Error(`${THIRD_PARTY_DIR} has no package.json: the example third-party driver is missing`);
  await using project = await tempProject("third-party");
  await writeManifest(project.dir, ["@kiln/cli", thirdParty.name, "@kiln/provisioner-shell"], [thirdParty]);
  const install = await pnpmInstall(project.dir);
  expect(install.code, install.transcript).toBe(0);
  expect(install.stdout + install.stderr).not.toMatch(BUILD_PROMPT);
  expect(await kilnPackagesNotFromTarballs(project.dir), "@kiln packages not installed from the tarballs").toEqual([]);

  await writeUnshareBakeFile(project.dir, { project: runScopedName("unshare"), message: "baked by a third-party driver" });
  // Its artefact store lives in the project, so the tarball it bakes goes with the project's directory.
  const env = userEnv({ KILN_STATE_DIR: join(project.dir, "state") });
  const build = await run(join(project.dir, "node_modules/.bin/kiln"), ["build"], { cwd: project.dir, timeoutMs: 15 * 60_000, env });
  expect(build.code, build.transcript).toBe(0);
  const manifest = JSON.parse(await readFile(join(project.dir, "kiln-manifest.json"), "utf8")) as {
    builds: { image: string; driver: string; status: string }[];
  };
  expect(manifest.builds.map((record) => [record.image, record.driver, record.status])).toEqual([["rootfs", "unshare", "baked"]]);
});

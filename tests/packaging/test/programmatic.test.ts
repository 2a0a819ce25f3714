import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { FIXTURE_IMAGE } from "@kiln/driver-docker/testing";
import { expect, it } from "vitest";
import { BAKED_FILE, writeDockerBakeFile } from "./bake-file.ts";
import {
  BUILD_PROMPT,
  installedPackages,
  kilnPackagesNotFromTarballs,
  pnpmInstall,
  readFromImage,
  removeBakeResources,
  run,
  runScopedName,
  tempProject,
  userEnv,
  writeManifest,
} from "./helpers.ts";

/**
 * A program that bakes through the engine, as tooling embedding Kiln would: it runs inside the temporary project, so every
 * import resolves to what was installed from the tarballs, never to the workspace.
 */
const BAKE_SCRIPT = `import { BuildRun, loadProject } from "@kiln/core/engine";
const project = await loadProject("kiln.yaml");
const run = new BuildRun({ project, kilnVersion: "packaging-test", runId: process.env.RUN_ID });
const result = await run.run();
console.log(JSON.stringify({
  ok: result.ok,
  records: result.records.map((r) => ({ image: r.image, status: r.status, artifact: r.artifact?.id, error: r.error })),
}));
process.exit(result.ok ? 0 : 1);
`;

/** Packages a Docker-only install must not pull in: other drivers, their SDKs and the SSH stack. */
const NOT_FOR_DOCKER = [
  "@aws-sdk/client-ec2",
  "node-ssh",
  "@kiln/communicator-ssh",
  "@kiln/driver-ec2",
  "@kiln/driver-lxc",
  "@kiln/driver-vagrant",
  "@kiln/driver-chroot",
  "@kiln/provisioner-ansible",
  "@kiln/provisioner-puppet",
  "@kiln/provisioner-chef",
  "@kiln/cli",
];

it("@kiln/core + @kiln/driver-docker + @kiln/provisioner-shell from their tarballs bake an image through @kiln/core/engine", async () => {
  await using project = await tempProject("api");
  await writeManifest(project.dir, ["@kiln/core", "@kiln/driver-docker", "@kiln/provisioner-shell"]);
  const install = await pnpmInstall(project.dir);
  expect(install.code, install.transcript).toBe(0);
  expect(install.stdout + install.stderr).not.toMatch(BUILD_PROMPT);
  expect(await kilnPackagesNotFromTarballs(project.dir), "@kiln packages not installed from the tarballs").toEqual([]);

  const installed = await installedPackages(project.dir);
  expect(installed.has("@kiln/driver-docker") && installed.has("dockerode"), "the Docker driver and its SDK are installed").toBe(true);
  expect(
    NOT_FOR_DOCKER.filter((name) => installed.has(name)),
    "installed though nothing asked for them",
  ).toEqual([]);

  const name = runScopedName("api");
  const runId = `packaging-${randomBytes(4).toString("hex")}`;
  const { tag } = await writeDockerBakeFile(project.dir, { project: name, source: FIXTURE_IMAGE, message: "baked through the API" });
  await writeFile(join(project.dir, "bake.mjs"), BAKE_SCRIPT);
  try {
    const bake = await run("node", ["bake.mjs"], { cwd: project.dir, timeoutMs: 5 * 60_000, env: userEnv({ RUN_ID: runId }) });
    expect(bake.code, bake.transcript).toBe(0);
    const result = JSON.parse(bake.stdout.trim().split("\n").at(-1) as string) as { records: { image: string; status: string }[] };
    expect(result.records.map((record) => [record.image, record.status])).toEqual([["hello", "baked"]]);
    const baked = await readFromImage(tag, BAKED_FILE);
    expect(baked.stdout.trim(), baked.transcript).toBe("baked through the API");
  } finally {
    await removeBakeResources({ runId, project: name });
  }
});

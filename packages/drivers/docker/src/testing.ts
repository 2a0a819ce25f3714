import { KilnError, LABELS, pluginInit, type BakeContext, type Machine } from "@kiln/core";
import { docker } from "./docker.js";
import { debootstrapImage } from "./debootstrap.js";

/** Builds (or reuses) a debootstrap base image: fixtures of other packages (an sshd image, say) start from it. */
export { debootstrapImage, type DebootstrapSource } from "./debootstrap.js";
import { connect, ensureEngine } from "./engine.js";

/** Debian bookworm minbase + python3, built with debootstrap from the host's mirror: the base every test starts from. */
export const FIXTURE_IMAGE = "kiln-fixture/debian:bookworm";

/**
 * Makes sure {@link FIXTURE_IMAGE} exists, building it once (about a minute) if needed. Fails with install instructions
 * when the engine or debootstrap is missing — tests that need it must not silently skip.
 */
export async function ensureFixtureImage(): Promise<string> {
  const docker = await connect();
  await ensureEngine(docker);
  const exists = await docker
    .getImage(FIXTURE_IMAGE)
    .inspect()
    .then(
      () => true,
      () => false,
    );
  if (exists) return FIXTURE_IMAGE;
  try {
    const built = await debootstrapImage(docker, { suite: "bookworm", variant: "minbase", include: ["python3"] });
    const [repo, tag] = FIXTURE_IMAGE.split(":") as [string, string];
    await docker.getImage(built.id).tag({ repo, tag });
  } catch (error) {
    if (error instanceof KilnError && error.code === "E_MISSING_TOOL") {
      throw new KilnError("E_MISSING_TOOL", `cannot build the test fixture image ${FIXTURE_IMAGE}: ${error.message}`, {
        hint: error.hint ?? "apt-get install -y debootstrap",
      });
    }
    throw error;
  }
  return FIXTURE_IMAGE;
}

/** Containers and images labelled with this run id: what a bake left behind. */
export async function listDockerResources(runId: string): Promise<string[]> {
  const docker = await connect();
  const filter = { label: [`${LABELS.build}=${runId}`] };
  const containers = await docker.listContainers({ all: true, filters: filter });
  const images = await docker.listImages({ all: true, filters: filter });
  return [...containers.map((c) => `container ${c.Names[0] ?? c.Id}`), ...images.map((i) => `image ${i.Id}`)];
}

/** Removes every container and image labelled with this run id (for tests that keep artefacts to inspect them). */
export async function removeDockerResources(runId: string): Promise<void> {
  const docker = await connect();
  const filter = { label: [`${LABELS.build}=${runId}`] };
  for (const container of await docker.listContainers({ all: true, filters: filter })) {
    await docker
      .getContainer(container.Id)
      .remove({ force: true, v: true })
      .catch(() => {});
  }
  // A parent image cannot go while a child built on it exists: remove in passes until nothing is left or nothing moves.
  for (let pass = 0; pass < 5; pass++) {
    const images = await docker.listImages({ all: true, filters: filter });
    if (images.length === 0) break;
    for (const image of images)
      await docker
        .getImage(image.Id)
        .remove({ force: true })
        .catch(() => {});
  }
}

/** Driver options that start the fixture image. */
export async function fixtureOptions(): Promise<{ source: string }> {
  return { source: await ensureFixtureImage() };
}

/**
 * A fresh build container from the fixture image, labelled with the context's run id and removed by its cleanups (or by
 * disposing it with `await using`).
 */
export async function launchFixture(ctx: BakeContext): Promise<Machine> {
  const driver = docker(pluginInit("driver", "docker", process.cwd(), ctx.log));
  const options = await fixtureOptions();
  return driver.launch(ctx, await driver.resolveSource(ctx, options), options);
}

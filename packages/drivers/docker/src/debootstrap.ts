import { createReadStream } from "node:fs";
import { join } from "node:path";
import type Docker from "dockerode";
import { KilnError } from "@kiln/core";
import { withFileLock } from "@kiln/core/kit";
import {
  buildRootfs,
  type BuildIo,
  DEBOOTSTRAP_LABEL_PREFIX,
  defaultCacheDir,
  type DebootstrapRecipe,
  type ResolvedRecipe,
  resolveRecipe,
  rootfsLabels,
} from "@kiln/debootstrap";

/** A Debian root file system built with `@kiln/debootstrap` and imported as a Docker image. */
export type DebootstrapSource = DebootstrapRecipe;

export interface DebootstrapImage {
  id: string;
  tag: string;
  mirror: string;
  /** When the tree was built: the mirror's state at that time is what the image holds. */
  created: string;
}

/** `kiln-debootstrap/<suite>:<key>`: the image a recipe is imported as, named by its cache key. */
function imageTag(recipe: ResolvedRecipe): string {
  return `kiln-debootstrap/${recipe.suite}:${recipe.key}`;
}

/** The tag the recipe's base image has, here and in a registry that shares it. */
export async function debootstrapTag(recipe: DebootstrapSource): Promise<string> {
  return imageTag(await resolveRecipe(recipe));
}

/** The image already imported for this recipe, if any (nothing is built). */
export async function findDebootstrapImage(docker: Docker, recipe: DebootstrapSource): Promise<DebootstrapImage | undefined> {
  return findImage(docker, imageTag(await resolveRecipe(recipe)));
}

/**
 * The recipe's base image: reused when it was imported before, else its root file system is built (or taken from
 * `@kiln/debootstrap`'s cache, which LXC, Vagrant and chroot bakes share) and imported. These base images are a cache like
 * Docker's build cache: reused across runs, not removed after a bake.
 */
export async function debootstrapImage(docker: Docker, recipe: DebootstrapSource, io: BuildIo = {}): Promise<DebootstrapImage> {
  const resolved = await resolveRecipe(recipe);
  const tag = imageTag(resolved);
  const found = await findImage(docker, tag);
  if (found) return found;
  // One import per recipe at a time: parallel bakes asking for the same base wait for it.
  return withFileLock(
    join(io.cacheDir ?? defaultCacheDir(), `${resolved.key}.docker-import`),
    async () => {
      const imported = await findImage(docker, tag);
      if (imported) return imported;
      const rootfs = await buildRootfs(resolved, io);
      const labels = { "dev.kiln.source": `debootstrap:${resolved.suite}/${resolved.variant}`, ...rootfsLabels(rootfs) };
      await importTarball(docker, rootfs.tarball, tag, labels);
      const image = await findImage(docker, tag);
      if (!image) throw new KilnError("E_SOURCE", `debootstrap image ${tag} was imported but cannot be found`);
      return image;
    },
    { signal: io.signal },
  );
}

async function findImage(docker: Docker, tag: string): Promise<DebootstrapImage | undefined> {
  try {
    const info = await docker.getImage(tag).inspect();
    const labels = info.Config?.Labels ?? {};
    return {
      id: info.Id,
      tag,
      mirror: labels[`${DEBOOTSTRAP_LABEL_PREFIX}.mirror`] ?? "",
      created: labels[`${DEBOOTSTRAP_LABEL_PREFIX}.created`] ?? info.Created,
    };
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404) return undefined;
    throw error;
  }
}

async function importTarball(docker: Docker, tarball: string, tag: string, labels: Record<string, string>): Promise<void> {
  const [repo, version] = tag.split(":") as [string, string];
  const changes = [
    ...Object.entries(labels).map(([name, value]) => `LABEL ${name}=${JSON.stringify(value)}`),
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  ];
  const response = await docker.importImage(createReadStream(tarball), { repo, tag: version, changes } as object);
  await new Promise<void>((resolve, reject) =>
    docker.modem.followProgress(response, (error: Error | null, output: { error?: string }[]) => {
      const failed = output?.find((item) => item.error);
      if (error || failed) reject(new KilnError("E_SOURCE", `docker import of ${tag} failed: ${error?.message ?? failed?.error}`));
      else resolve();
    }),
  );
}

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { type Artifact, type ArtifactFile, type BakeContext, KilnError, type SourceRef } from "@kiln/core";
import { buildRootfs, type DebootstrapRecipe, describeRecipe, findRootfs, resolveRecipe, rootfsLabels } from "./debootstrap.js";

/** The sources every root-file-system driver knows (chroot, LXC): a debootstrap recipe or a local tarball. */
export type RootfsSourceOption = { debootstrap: DebootstrapRecipe } | { tarball: string };

/** Where a driver keeps its artefacts, to find a parent's tarball (`from:`). */
export interface ParentStore {
  readonly dir: string;
  get(id: string): Promise<Artifact | undefined>;
}

/**
 * Resolves the parent artefact (`from:`), a debootstrap recipe (built once, cached) or a project tarball to a root file system
 * tarball in `details.tarball`, with a digest that changes when its content does. Undefined for sources it does not know, which
 * the driver resolves itself.
 */
export async function rootfsSource(
  ctx: BakeContext,
  source: RootfsSourceOption | Record<string, unknown> | undefined,
  store: ParentStore,
  driver: string,
): Promise<SourceRef | undefined> {
  if (ctx.parent) {
    const parent = ctx.parent.files?.[0] ? ctx.parent : await store.get(ctx.parent.id);
    const file = parent?.files?.find((candidate) => candidate.format === "tar");
    if (!file)
      throw new KilnError("E_SOURCE", `artefact ${ctx.parent.id} of "${ctx.parent.image}" is not in the ${driver} store ${store.dir}`);
    return {
      id: ctx.parent.id,
      digest: file.sha256,
      description: `${ctx.parent.image} (${ctx.parent.id})`,
      details: { tarball: file.path },
    };
  }
  if (!source)
    throw new KilnError("E_CONFIG", `image "${ctx.image}" has no source`, {
      hint: "set source: { debootstrap: { suite: bookworm } } or from:",
    });
  if ("tarball" in source && typeof source.tarball === "string") {
    const tarball = await ctx.hostPath(source.tarball, "read");
    return { id: `tarball:${tarball}`, digest: await sha256File(tarball), description: source.tarball, details: { tarball } };
  }
  if (!("debootstrap" in source)) return undefined;
  const wanted = source.debootstrap as DebootstrapRecipe;
  const recipe = await resolveRecipe(wanted);
  const found = await findRootfs(recipe);
  if (!found && ctx.planning) throw new KilnError("E_SOURCE", `debootstrap ${recipe.suite} tree is not built yet`);
  const rootfs = found ?? (await buildRootfs(recipe, { signal: ctx.signal, onOutput: (line) => ctx.output("stdout", `${line}\n`) }));
  return {
    id: `debootstrap:${recipe.key}`,
    digest: `${recipe.key}@${rootfs.created}`,
    description: describeRecipe(wanted),
    details: { tarball: rootfs.tarball, mirror: recipe.mirror, built: rootfs.created, ...rootfsLabels(rootfs) },
  };
}

/** The root file system tarball of an artefact of `store` (from the artefact as given, else from its record). */
export async function storedTarball(
  store: ParentStore,
  artifact: Artifact,
  driver: string,
  code: "E_SOURCE" | "E_LAUNCH",
): Promise<ArtifactFile> {
  const files = artifact.files?.length ? artifact.files : (await store.get(artifact.id))?.files;
  const file = files?.find((candidate) => candidate.format === "tar");
  if (!file) throw new KilnError(code, `artefact ${artifact.id} of "${artifact.image}" is not in the ${driver} store ${store.dir}`);
  return file;
}

/** The root file system tarball a source resolved to. */
export function sourceTarball(source: SourceRef): string {
  const tarball = source.details?.tarball;
  if (!tarball) throw new KilnError("E_LAUNCH", `source ${source.description} has no root file system tarball`);
  return tarball;
}

/** `sha256:<hex>` of a file's content. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  try {
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  } catch (error) {
    throw new KilnError("E_SOURCE", `cannot read ${path}: ${(error as Error).message}`, {
      hint: "tarballs are relative to the bake file's directory",
    });
  }
  return `sha256:${hash.digest("hex")}`;
}

import { LABEL_BUILD, LABEL_EMULATOR, LABEL_INSTANCE } from "./container.js";
import type { EmulatorContext } from "./context.js";

/** Repository of the images CreateImage commits; the tag is the AMI id, so `docker images` tells which AMI is which. */
const COMMIT_REPOSITORY = "kiln-ec2-emulator/ami";

/** Commits an instance's container (paused, as Docker does by default) to a labelled image; returns its tag. */
export async function commitInstance(ctx: EmulatorContext, containerId: string, imageId: string): Promise<string> {
  const reference = `${COMMIT_REPOSITORY}:${imageId}`;
  // Remember it before the commit ends, so stop() removes it even when it finishes while stop() runs.
  ctx.committedImages.add(reference);
  await ctx.docker.getContainer(containerId).commit({
    _query: { container: containerId, repo: COMMIT_REPOSITORY, tag: imageId, pause: true },
    // The container's own labels are merged in; the instance id label would only mislead on images, so it is blanked.
    _body: { Labels: { [LABEL_BUILD]: ctx.runId, [LABEL_EMULATOR]: "1", [LABEL_INSTANCE]: "" } },
  });
  return reference;
}

/**
 * Removes a committed image once nothing needs it: no registered AMI (CopyImage shares images) and no instance that is not yet
 * terminated (its container would keep the layers busy, and EC2 lets a deregistered AMI's instances run on).
 */
export async function releaseDockerImage(ctx: EmulatorContext, reference: string): Promise<void> {
  if (!ctx.committedImages.has(reference)) return;
  for (const image of ctx.state.images.values()) if (image.dockerImage === reference) return;
  for (const instance of ctx.state.instances.values()) if (instance.dockerImage === reference && instance.state !== "terminated") return;
  ctx.committedImages.delete(reference);
  // By tag: an image that another commit builds on is only untagged now, and pruned when that child goes.
  await ctx.docker
    .getImage(reference)
    .remove({ force: true })
    .catch(() => {});
}

/** Removes every image this run committed: the tags it knows, then anything else carrying its labels (children first). */
export async function removeCommittedImages(ctx: EmulatorContext): Promise<void> {
  for (const reference of ctx.committedImages)
    await ctx.docker
      .getImage(reference)
      .remove({ force: true })
      .catch(() => {});
  ctx.committedImages.clear();
  const filters = { label: [`${LABEL_BUILD}=${ctx.runId}`, `${LABEL_EMULATOR}=1`] };
  // A parent image cannot go while a child exists, so retry until a round removes nothing more.
  for (let round = 0; round < 5; round++) {
    const left = await ctx.docker.listImages({ all: true, filters });
    if (left.length === 0) return;
    await Promise.all(
      left.map((image) =>
        ctx.docker
          .getImage(image.Id)
          .remove({ force: true })
          .catch(() => {}),
      ),
    );
  }
}

import { delay, type EmulatorContext, inBackground } from "../context.js";
import { commitInstance, releaseDockerImage } from "../docker-images.js";
import { Ec2Error, notFound } from "../errors.js";
import type { QueryParams } from "../query.js";
import { ACCOUNT_ID, type ImageRecord, newId, type SnapshotRecord } from "../state.js";
import { fields, set } from "../xml.js";
import type { ActionHandler } from "./types.js";

/** EC2's AMI name rule: 3–128 characters of letters, digits and ( ) [ ] . / - ' @ _ and space. */
const AMI_NAME = /^[A-Za-z0-9()[\]./\-'@_ ]{3,128}$/;

function checkName(ctx: EmulatorContext, name: string): void {
  if (!AMI_NAME.test(name)) throw new Ec2Error("InvalidAMIName.Malformed", `AMI names must be between 3 and 128 characters long, and may contain letters, numbers, '(', ')', '.', '-', '/' and '_'`);
  for (const image of ctx.state.images.values()) {
    if (image.ownerId === ACCOUNT_ID && image.name === name) throw new Ec2Error("InvalidAMIName.Duplicate", `AMI name ${name} is already in use by AMI ${image.imageId}`);
  }
}

/** Records a new own AMI and its snapshot, both pending until `ready` settles (then available/completed, or failed/error). */
function register(ctx: EmulatorContext, params: QueryParams, base: Pick<ImageRecord, "imageId" | "name" | "description" | "architecture" | "dockerImage" | "tags">, ready: () => Promise<string>): ImageRecord {
  const snapshot: SnapshotRecord = {
    snapshotId: newId("snap"),
    state: "pending",
    volumeSize: 8,
    startTime: new Date(),
    description: `Created by CreateImage for ${base.imageId}`,
    tags: params.tagSpecifications("snapshot"),
  };
  const image: ImageRecord = { ...base, ownerId: ACCOUNT_ID, state: "pending", isPublic: false, launchUserIds: [], creationDate: new Date(), snapshotId: snapshot.snapshotId };
  ctx.state.snapshots.set(snapshot.snapshotId, snapshot);
  ctx.state.images.set(image.imageId, image);
  inBackground(ctx, async () => {
    try {
      image.dockerImage = await ready();
      await delay(ctx.transitionDelayMs);
      image.state = "available";
      snapshot.state = "completed";
    } catch {
      image.state = "failed";
      snapshot.state = "error";
    }
    // Deregistered while pending: nothing refers to the commit any more.
    if (!ctx.state.images.has(image.imageId)) await releaseDockerImage(ctx, image.dockerImage);
  });
  return image;
}

export const CreateImage: ActionHandler = (ctx, params) => {
  const instanceId = params.require("InstanceId");
  const name = params.require("Name");
  const instance = ctx.state.instances.get(instanceId);
  if (!instance) throw notFound("instance", instanceId);
  const containerId = instance.containerId;
  if (!containerId || (instance.state !== "running" && instance.state !== "stopped")) {
    throw new Ec2Error("IncorrectInstanceState", `The instance '${instanceId}' is not in a state from which it can be imaged.`);
  }
  checkName(ctx, name);
  const imageId = newId("ami");
  // NoReboot is accepted and ignored: the container is paused for the commit either way, which is as consistent as a reboot.
  const image = register(
    ctx,
    params,
    { imageId, name, description: params.get("Description") ?? "", architecture: "x86_64", dockerImage: "", tags: params.tagSpecifications("image") },
    () => commitInstance(ctx, containerId, imageId),
  );
  return fields({ imageId: image.imageId });
};

export const CopyImage: ActionHandler = (ctx, params) => {
  const sourceId = params.require("SourceImageId");
  params.require("SourceRegion");
  const name = params.require("Name");
  const source = ctx.state.images.get(sourceId);
  if (!source) throw notFound("image", sourceId);
  if (source.state !== "available") throw new Ec2Error("IncorrectState", `Image ${sourceId} is not in a valid state for copying: ${source.state}`);
  checkName(ctx, name);
  // One region only: the copy shares the source's Docker image, so it lives on after the source is deregistered.
  const tags = { ...(params.get("CopyImageTags") === "true" ? source.tags : {}), ...params.tagSpecifications("image") };
  const image = register(
    ctx,
    params,
    { imageId: newId("ami"), name, description: params.get("Description") ?? source.description, architecture: source.architecture, dockerImage: source.dockerImage, tags },
    async () => source.dockerImage,
  );
  return fields({ imageId: image.imageId });
};

/** An AMI the caller owns (the seeded public one is Debian's: modifying or deregistering it is refused, as on EC2). */
function ownImage(ctx: EmulatorContext, imageId: string): ImageRecord {
  const image = ctx.state.images.get(imageId);
  if (!image) throw notFound("image", imageId);
  if (image.ownerId !== ACCOUNT_ID) throw new Ec2Error("AuthFailure", `Not authorized for image:${imageId}`);
  return image;
}

export const DeregisterImage: ActionHandler = async (ctx, params) => {
  const image = ownImage(ctx, params.require("ImageId"));
  // Gone from DescribeImages at once; the snapshot stays (DeleteSnapshot's job) and the Docker image waits for its instances.
  ctx.state.images.delete(image.imageId);
  if (image.dockerImage) await releaseDockerImage(ctx, image.dockerImage);
  return fields({ return: true });
};

export const ModifyImageAttribute: ActionHandler = (ctx, params) => {
  const image = ownImage(ctx, params.require("ImageId"));
  const description = params.get("Description.Value");
  if (description !== undefined) image.description = description;
  const change = (prefix: string, add: boolean) => {
    for (const index of params.indices(prefix)) {
      const userId = params.get(`${prefix}.${index}.UserId`);
      const group = params.get(`${prefix}.${index}.Group`);
      if (userId !== undefined) image.launchUserIds = add ? [...new Set([...image.launchUserIds, userId])] : image.launchUserIds.filter((id) => id !== userId);
      if (group === "all") image.isPublic = add;
    }
  };
  change("LaunchPermission.Add", true);
  change("LaunchPermission.Remove", false);
  // The older flat form: Attribute=launchPermission, OperationType=add|remove, UserId.N, UserGroup.N.
  const add = params.get("OperationType") !== "remove";
  for (const userId of params.list("UserId")) image.launchUserIds = add ? [...new Set([...image.launchUserIds, userId])] : image.launchUserIds.filter((id) => id !== userId);
  if (params.list("UserGroup").includes("all")) image.isPublic = add;
  return fields({ return: true });
};

export const DescribeImageAttribute: ActionHandler = (ctx, params) => {
  const image = ownImage(ctx, params.require("ImageId"));
  const attribute = params.require("Attribute");
  if (attribute === "launchPermission") {
    const permissions = [...image.launchUserIds.map((userId) => ({ userId })), ...(image.isPublic ? [{ group: "all" }] : [])];
    return fields({ imageId: image.imageId, launchPermission: set(permissions) });
  }
  if (attribute === "description") return fields({ imageId: image.imageId, description: { value: image.description } });
  throw new Ec2Error("InvalidParameterValue", `Value (${attribute}) for parameter attribute is invalid. Supported: launchPermission, description`);
};

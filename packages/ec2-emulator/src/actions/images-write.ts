import { delay, inBackground, type RequestContext } from "../context.js";
import { commitInstance, releaseDockerImage } from "../docker-images.js";
import { Ec2Error, notFound } from "../errors.js";
import type { QueryParams } from "../query.js";
import { ACCOUNT_ID, defaultKmsKeyId, type EbsVolume, type ImageRecord, newId, ROOT_DEVICE, type SnapshotRecord } from "../state.js";
import { fields } from "../xml.js";
import type { ActionHandler } from "./types.js";

/** EC2's AMI name rule: 3–128 characters of letters, digits and ( ) [ ] . / - ' @ _ and space. */
const AMI_NAME = /^[A-Za-z0-9()[\]./\-'@_ ]{3,128}$/;

/** Names are unique per account and region, so a copy in another region may keep its source's name. */
function checkName(ctx: RequestContext, name: string): void {
  if (!AMI_NAME.test(name))
    throw new Ec2Error(
      "InvalidAMIName.Malformed",
      `AMI names must be between 3 and 128 characters long, and may contain letters, numbers, '(', ')', '.', '-', '/' and '_'`,
    );
  for (const image of ctx.state.imagesIn(ctx.region)) {
    if (image.ownerId === ACCOUNT_ID && image.name === name)
      throw new Ec2Error("InvalidAMIName.Duplicate", `AMI name ${name} is already in use by AMI ${image.imageId}`);
  }
}

type NewImage = Pick<ImageRecord, "imageId" | "name" | "description" | "architecture" | "dockerImage" | "rootVolume" | "tags">;

/**
 * Records a new own AMI in the request's region and its snapshot (same size and encryption as the AMI's root volume), both
 * pending until `ready` settles and the `image` transition delay passed (then available/completed, or failed/error).
 */
function register(
  ctx: RequestContext,
  params: QueryParams,
  base: NewImage,
  snapshotDescription: string,
  ready: () => Promise<string>,
): ImageRecord {
  const snapshot: SnapshotRecord = {
    snapshotId: newId("snap"),
    region: ctx.region,
    state: "pending",
    volumeSize: base.rootVolume.volumeSize,
    encrypted: base.rootVolume.encrypted,
    kmsKeyId: base.rootVolume.kmsKeyId,
    startTime: new Date(),
    description: snapshotDescription,
    tags: params.tagSpecifications("snapshot"),
  };
  const image: ImageRecord = {
    ...base,
    region: ctx.region,
    ownerId: ACCOUNT_ID,
    state: "pending",
    isPublic: false,
    launchPermissions: { userIds: [], organizationArns: [], organizationalUnitArns: [] },
    creationDate: new Date(),
    deprecationTime: undefined,
    snapshotId: snapshot.snapshotId,
  };
  ctx.state.snapshots.set(snapshot.snapshotId, snapshot);
  ctx.state.images.set(image.imageId, image);
  inBackground(ctx, async () => {
    try {
      image.dockerImage = await ready();
      await delay(ctx.transitionDelays.image);
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

/** Works on running and stopped instances (a stopped one's container is kept for this). */
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
  // The snapshot is of the root volume as launched: its size and encryption carry over (default 8 GiB gp2, unencrypted).
  const root = instance.blockDevices.find((device) => device.deviceName === ROOT_DEVICE);
  const rootVolume: EbsVolume = root
    ? { volumeSize: root.volumeSize, volumeType: root.volumeType, encrypted: root.encrypted, kmsKeyId: root.kmsKeyId }
    : { volumeSize: 8, volumeType: "gp2", encrypted: false, kmsKeyId: undefined };
  // NoReboot and BlockDeviceMapping are accepted and ignored: the container is paused for the commit either way, which is as
  // consistent as a reboot.
  const image = register(
    ctx,
    params,
    {
      imageId,
      name,
      description: params.get("Description") ?? "",
      architecture: "x86_64",
      dockerImage: "",
      rootVolume,
      tags: params.tagSpecifications("image"),
    },
    `Created by CreateImage(${instanceId}) for ${imageId}`,
    () => commitInstance(ctx, containerId, imageId),
  );
  return fields({ imageId: image.imageId });
};

/**
 * Copies `SourceImageId` from `SourceRegion` into the request's region. `Encrypted=true` encrypts the copy with `KmsKeyId` or the
 * destination region's default key; an encrypted source stays encrypted (with its key within one region, else with the
 * destination's default key, as a KMS key belongs to one region).
 */
export const CopyImage: ActionHandler = (ctx, params) => {
  const sourceId = params.require("SourceImageId");
  const sourceRegion = params.require("SourceRegion");
  const name = params.require("Name");
  const source = ctx.state.image(sourceId, sourceRegion);
  if (!source) throw notFound("image", sourceId);
  if (source.state !== "available")
    throw new Ec2Error("IncorrectState", `Image ${sourceId} is not in a valid state for copying: ${source.state}`);
  const encrypt = params.bool("Encrypted") ?? false;
  const kmsKeyId = params.get("KmsKeyId");
  if (kmsKeyId !== undefined && !encrypt) throw new Ec2Error("InvalidParameterCombination", "KmsKeyId requires Encrypted to be true");
  checkName(ctx, name);
  const from = source.rootVolume;
  const sameKey = from.encrypted && sourceRegion === ctx.region;
  const rootVolume: EbsVolume = encrypt
    ? { ...from, encrypted: true, kmsKeyId: kmsKeyId ?? defaultKmsKeyId(ctx.region) }
    : { ...from, kmsKeyId: from.encrypted ? (sameKey ? from.kmsKeyId : defaultKmsKeyId(ctx.region)) : undefined };
  const imageId = newId("ami");
  // The copy shares the source's Docker image (every region is this one engine), so it lives on after the source is deregistered.
  const tags = { ...(params.get("CopyImageTags") === "true" ? source.tags : {}), ...params.tagSpecifications("image") };
  const image = register(
    ctx,
    params,
    {
      imageId,
      name,
      description: params.get("Description") ?? source.description,
      architecture: source.architecture,
      dockerImage: source.dockerImage,
      rootVolume,
      tags,
    },
    `Copied for DestinationAmi ${imageId} from SourceAmi ${sourceId} for SourceSnapshot ${source.snapshotId}. Task created on ${new Date().toISOString()}.`,
    async () => source.dockerImage,
  );
  return fields({ imageId: image.imageId });
};

/** An AMI the caller owns in the request's region (the seeded public one is Debian's: changing it is refused, as on EC2). */
export function ownImage(ctx: RequestContext, imageId: string): ImageRecord {
  const image = ctx.state.image(imageId, ctx.region);
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

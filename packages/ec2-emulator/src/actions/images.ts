import { notFound } from "../errors.js";
import { matchesFilters } from "../query.js";
import { ACCOUNT_ID, type ImageRecord, ROOT_DEVICE, tagSet } from "../state.js";
import { fields, set } from "../xml.js";
import type { ActionHandler } from "./types.js";

/** What each DescribeImages filter reads from an image (the ones `source_ami_filter` and the driver use). */
function imageFilterValues(image: ImageRecord, name: string): string[] | undefined {
  const values: Record<string, string[]> = {
    "image-id": [image.imageId],
    name: [image.name],
    "owner-id": [image.ownerId],
    state: [image.state],
    architecture: [image.architecture],
    "root-device-type": ["ebs"],
    "virtualization-type": ["hvm"],
    "image-type": ["machine"],
    "is-public": [String(image.isPublic)],
    "block-device-mapping.snapshot-id": [image.snapshotId],
    "block-device-mapping.device-name": [ROOT_DEVICE],
    "block-device-mapping.volume-size": [String(image.rootVolume.volumeSize)],
    "block-device-mapping.volume-type": [image.rootVolume.volumeType],
    "block-device-mapping.encrypted": [String(image.rootVolume.encrypted)],
    description: [image.description],
  };
  return values[name];
}

/** `Owner.N` takes account ids or the aliases `self` (the caller) and `amazon`; the seeded Debian image is not Amazon's. */
function ownerMatches(image: ImageRecord, owners: string[]): boolean {
  if (owners.length === 0) return true;
  return owners.some((owner) => (owner === "self" ? image.ownerId === ACCOUNT_ID : owner === image.ownerId));
}

/** The request region's images and the seeded one; an id from another region answers InvalidAMIID.NotFound, as on EC2. */
export const DescribeImages: ActionHandler = (ctx, params) => {
  const ids = params.list("ImageId");
  for (const id of ids) if (!ctx.state.image(id, ctx.region)) throw notFound("image", id);
  const owners = params.list("Owner");
  const filters = params.filters();
  const selected = ctx.state
    .imagesIn(ctx.region)
    .filter(
      (image) =>
        (ids.length === 0 || ids.includes(image.imageId)) &&
        ownerMatches(image, owners) &&
        matchesFilters(filters, image.tags, (name) => imageFilterValues(image, name)),
    );
  return fields({ imagesSet: set(selected.map(imageItem)) });
};

function imageItem(image: ImageRecord) {
  const root = image.rootVolume;
  return {
    imageId: image.imageId,
    imageLocation: `${image.ownerId}/${image.name}`,
    imageState: image.state,
    imageOwnerId: image.ownerId,
    creationDate: image.creationDate.toISOString(),
    isPublic: image.isPublic,
    architecture: image.architecture,
    imageType: "machine",
    name: image.name,
    description: image.description,
    rootDeviceType: "ebs",
    rootDeviceName: ROOT_DEVICE,
    blockDeviceMapping: set([
      {
        deviceName: ROOT_DEVICE,
        ebs: {
          snapshotId: image.snapshotId,
          volumeSize: root.volumeSize,
          deleteOnTermination: true,
          volumeType: root.volumeType,
          kmsKeyId: root.kmsKeyId,
          encrypted: root.encrypted,
        },
      },
    ]),
    virtualizationType: "hvm",
    hypervisor: "xen",
    enaSupport: true,
    platformDetails: "Linux/UNIX",
    usageOperation: "RunInstances",
    deprecationTime: image.deprecationTime?.toISOString(),
    tagSet: set(tagSet(image.tags)),
  };
}

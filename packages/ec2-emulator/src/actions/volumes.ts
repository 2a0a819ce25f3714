import { Ec2Error } from "../errors.js";
import { matchesFilters } from "../query.js";
import { tagSet, type VolumeView } from "../state.js";
import { fields, set } from "../xml.js";
import type { ActionHandler } from "./types.js";

/**
 * Volumes are instances' block devices (see Ec2State.volumes): attached while the instance exists, then deleted with it or, with
 * DeleteOnTermination=false, left `available` until DeleteVolume. Like instances they are global: every region lists them.
 */

const volumeNotFound = (id: string): Ec2Error => new Ec2Error("InvalidVolume.NotFound", `The volume '${id}' does not exist.`);

function volumeFilterValues({ device, instance, status }: VolumeView, name: string): string[] | undefined {
  const attached = status === "in-use";
  const values: Record<string, string[]> = {
    "volume-id": [device.volumeId],
    status: [status],
    size: [String(device.volumeSize)],
    "volume-type": [device.volumeType],
    encrypted: [String(device.encrypted)],
    "snapshot-id": device.snapshotId ? [device.snapshotId] : [],
    "availability-zone": [`${instance.region}a`],
    "attachment.instance-id": attached ? [instance.instanceId] : [],
    "attachment.device": attached ? [device.deviceName] : [],
    "attachment.status": attached ? ["attached"] : [],
    "attachment.delete-on-termination": attached ? [String(device.deleteOnTermination)] : [],
  };
  return values[name];
}

/** gp2's baseline (3 IOPS per GiB, 100 to 16000) and gp3's default; other types' IOPS are not recorded. */
function iops(view: VolumeView): number | undefined {
  if (view.device.volumeType === "gp2") return Math.min(16_000, Math.max(100, 3 * view.device.volumeSize));
  if (view.device.volumeType === "gp3") return 3000;
  return undefined;
}

/** `VolumeId.N` (an unknown id answers InvalidVolume.NotFound) and filters; a filter that matches nothing answers an empty set. */
export const DescribeVolumes: ActionHandler = (ctx, params) => {
  const ids = params.list("VolumeId");
  const volumes = ctx.state.volumes();
  for (const id of ids) if (!volumes.some((v) => v.device.volumeId === id)) throw volumeNotFound(id);
  const filters = params.filters();
  const selected = volumes.filter(
    (v) =>
      (ids.length === 0 || ids.includes(v.device.volumeId)) &&
      matchesFilters(filters, v.device.tags, (name) => volumeFilterValues(v, name)),
  );
  return fields({
    volumeSet: set(
      selected.map((view) => {
        const { device, instance, status } = view;
        const attachments =
          status === "in-use"
            ? [
                {
                  volumeId: device.volumeId,
                  instanceId: instance.instanceId,
                  device: device.deviceName,
                  status: "attached",
                  attachTime: device.attachTime.toISOString(),
                  deleteOnTermination: device.deleteOnTermination,
                },
              ]
            : [];
        return {
          volumeId: device.volumeId,
          size: device.volumeSize,
          snapshotId: device.snapshotId ?? "",
          availabilityZone: `${instance.region}a`,
          status,
          createTime: device.attachTime.toISOString(),
          attachmentSet: set(attachments),
          volumeType: device.volumeType,
          iops: iops(view),
          throughput: device.volumeType === "gp3" ? 125 : undefined,
          encrypted: device.encrypted,
          kmsKeyId: device.kmsKeyId,
          multiAttachEnabled: false,
          tagSet: set(tagSet(device.tags)),
        };
      }),
    ),
  });
};

/** Only a detached (`available`) volume can go; an attached one answers VolumeInUse, as on EC2. */
export const DeleteVolume: ActionHandler = (ctx, params) => {
  const volumeId = params.require("VolumeId");
  const volume = ctx.state.volumes().find((v) => v.device.volumeId === volumeId);
  if (!volume) throw volumeNotFound(volumeId);
  if (volume.status === "in-use")
    throw new Ec2Error("VolumeInUse", `Volume ${volumeId} is currently attached to ${volume.instance.instanceId}`);
  ctx.state.deletedVolumes.add(volumeId);
  return fields({ return: true });
};

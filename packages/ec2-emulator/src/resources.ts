import { ACCOUNT_ID, type Ec2State } from "./state.js";

type Tags = Record<string, string>;

/** What the emulator still holds that a test created: anything listed here after a bake is a leak. Every entry has its tags. */
export interface EmulatorResources {
  /** Instances not yet terminated (pending, running, stopping, stopped, shutting-down). */
  instances: Array<{ instanceId: string; state: string; ipAddress?: string; containerId?: string; tags: Tags }>;
  keyPairs: Array<{ keyName: string; keyPairId: string; tags: Tags }>;
  securityGroups: Array<{ groupId: string; groupName: string; tags: Tags }>;
  /** Images owned by the caller, in every region; the seeded public AMI is not listed. */
  images: Array<{ imageId: string; name: string; state: string; region: string; tags: Tags }>;
  /** `imageId`: the registered AMI that refers to the snapshot, if any. */
  snapshots: Array<{ snapshotId: string; state: string; region: string; imageId?: string; tags: Tags }>;
  /** Detached volumes: those of terminated instances launched with DeleteOnTermination=false, until DeleteVolume (attached ones go with their instance). */
  volumes: Array<{ volumeId: string; state: string; instanceId: string; tags: Tags }>;
}

export function listResources(state: Ec2State): EmulatorResources {
  return {
    instances: [...state.instances.values()]
      .filter((i) => i.state !== "terminated")
      .map((i) => ({
        instanceId: i.instanceId,
        state: i.state,
        ...(i.ipAddress ? { ipAddress: i.ipAddress } : {}),
        ...(i.containerId ? { containerId: i.containerId } : {}),
        tags: { ...i.tags },
      })),
    keyPairs: [...state.keyPairs.values()].map((k) => ({ keyName: k.keyName, keyPairId: k.keyPairId, tags: { ...k.tags } })),
    securityGroups: [...state.securityGroups.values()].map((g) => ({ groupId: g.groupId, groupName: g.groupName, tags: { ...g.tags } })),
    images: [...state.images.values()]
      .filter((i) => i.ownerId === ACCOUNT_ID)
      .map((i) => ({ imageId: i.imageId, name: i.name, state: i.state, region: i.region, tags: { ...i.tags } })),
    snapshots: [...state.snapshots.values()].map((s) => {
      const image = [...state.images.values()].find((i) => i.snapshotId === s.snapshotId);
      return {
        snapshotId: s.snapshotId,
        state: s.state,
        region: s.region,
        ...(image ? { imageId: image.imageId } : {}),
        tags: { ...s.tags },
      };
    }),
    volumes: state
      .volumes()
      .filter((v) => v.status === "available")
      .map((v) => ({ volumeId: v.device.volumeId, state: v.status, instanceId: v.instance.instanceId, tags: { ...v.device.tags } })),
  };
}

export function isEmpty(resources: EmulatorResources): boolean {
  return Object.values(resources).every((list: unknown[]) => list.length === 0);
}

/**
 * Ids of the live resources (instance, key pair, group, image, snapshot and detached volume ids) tagged `key` — with `value`, when given. For leak
 * checks by run: `resourcesTagged(emulator.resources(), "dev.kiln.build", runId)` should be empty after a bake.
 */
export function resourcesTagged(resources: EmulatorResources, key: string, value?: string): string[] {
  const matches = (tags: Tags) => Object.hasOwn(tags, key) && (value === undefined || tags[key] === value);
  return [
    ...resources.instances.filter((r) => matches(r.tags)).map((r) => r.instanceId),
    ...resources.keyPairs.filter((r) => matches(r.tags)).map((r) => r.keyPairId),
    ...resources.securityGroups.filter((r) => matches(r.tags)).map((r) => r.groupId),
    ...resources.images.filter((r) => matches(r.tags)).map((r) => r.imageId),
    ...resources.snapshots.filter((r) => matches(r.tags)).map((r) => r.snapshotId),
    ...resources.volumes.filter((r) => matches(r.tags)).map((r) => r.volumeId),
  ];
}

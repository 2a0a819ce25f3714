import { ACCOUNT_ID, type Ec2State } from "./state.js";

/** What the emulator still holds that a test created: anything listed here after a bake is a leak. */
export interface EmulatorResources {
  /** Instances not yet terminated (pending, running, shutting-down). */
  instances: Array<{ instanceId: string; state: string; ipAddress?: string; containerId?: string }>;
  keyPairs: Array<{ keyName: string; keyPairId: string }>;
  securityGroups: Array<{ groupId: string; groupName: string }>;
  /** Images owned by the caller; the seeded public AMI is not listed. */
  images: Array<{ imageId: string; name: string; state: string }>;
  snapshots: Array<{ snapshotId: string; state: string }>;
}

export function listResources(state: Ec2State): EmulatorResources {
  return {
    instances: [...state.instances.values()]
      .filter((i) => i.state !== "terminated")
      .map((i) => ({ instanceId: i.instanceId, state: i.state, ...(i.ipAddress ? { ipAddress: i.ipAddress } : {}), ...(i.containerId ? { containerId: i.containerId } : {}) })),
    keyPairs: [...state.keyPairs.values()].map((k) => ({ keyName: k.keyName, keyPairId: k.keyPairId })),
    securityGroups: [...state.securityGroups.values()].map((g) => ({ groupId: g.groupId, groupName: g.groupName })),
    images: [...state.images.values()].filter((i) => i.ownerId === ACCOUNT_ID).map((i) => ({ imageId: i.imageId, name: i.name, state: i.state })),
    snapshots: [...state.snapshots.values()].map((s) => ({ snapshotId: s.snapshotId, state: s.state })),
  };
}

export function isEmpty(resources: EmulatorResources): boolean {
  return Object.values(resources).every((list: unknown[]) => list.length === 0);
}

import { randomBytes } from "node:crypto";

/** The account the emulator's caller owns ("self"). */
export const ACCOUNT_ID = "123456789012";
export const REGION = "us-east-1";
export const AVAILABILITY_ZONE = "us-east-1a";
export const VPC_ID = "vpc-0kiln00000000000";

/** EC2's instance state names with their numeric codes (the low byte of `instanceState.code`). */
export const STATE_CODES = { pending: 0, running: 16, "shutting-down": 32, terminated: 48, stopping: 64, stopped: 80 } as const;
export type InstanceStateName = keyof typeof STATE_CODES;

export interface KeyPairRecord {
  keyPairId: string;
  keyName: string;
  keyType: "ed25519" | "rsa";
  keyFingerprint: string;
  /** `ssh-ed25519 AAAA…` line, what goes into authorized_keys. */
  publicKey: string;
  createTime: Date;
  tags: Record<string, string>;
}

export interface IngressRule {
  ipProtocol: string;
  fromPort?: number;
  toPort?: number;
  cidrs: string[];
}

export interface SecurityGroupRecord {
  groupId: string;
  groupName: string;
  description: string;
  vpcId: string;
  ingress: IngressRule[];
  tags: Record<string, string>;
}

export interface SnapshotRecord {
  snapshotId: string;
  /** pending while the image behind it is being committed, then completed (or error if the commit failed). */
  state: "pending" | "completed" | "error";
  volumeSize: number;
  startTime: Date;
  description: string;
  tags: Record<string, string>;
}

export interface ImageRecord {
  imageId: string;
  name: string;
  description: string;
  ownerId: string;
  /** pending until the commit finished and `transitionDelayMs` passed; failed when the commit failed. */
  state: "pending" | "available" | "failed";
  isPublic: boolean;
  /** Accounts given launch permission (ModifyImageAttribute); `Group=all` sets isPublic instead. */
  launchUserIds: string[];
  creationDate: Date;
  architecture: string;
  /** The local Docker image instances of this AMI start from (a tag; CopyImage shares its source's). */
  dockerImage: string;
  snapshotId: string;
  tags: Record<string, string>;
}

export interface InstanceRecord {
  instanceId: string;
  reservationId: string;
  imageId: string;
  /** Kept apart from the AMI: a deregistered AMI's Docker image must stay until its instances are gone. */
  dockerImage: string;
  instanceType: string;
  keyName: string | undefined;
  groupIds: string[];
  userData: string | undefined;
  state: InstanceStateName;
  stateReason: string | undefined;
  launchTime: Date;
  /** 127.0.0.N: both the public and private address; sshd is published on its port 22. */
  ipAddress: string | undefined;
  containerId: string | undefined;
  /** DescribeInstances by id answers NotFound before this time (eventual consistency). */
  visibleAt: number;
  tags: Record<string, string>;
}

/** Everything the emulator holds, by id. */
export class Ec2State {
  readonly keyPairs = new Map<string, KeyPairRecord>();
  readonly securityGroups = new Map<string, SecurityGroupRecord>();
  readonly images = new Map<string, ImageRecord>();
  readonly snapshots = new Map<string, SnapshotRecord>();
  readonly instances = new Map<string, InstanceRecord>();

  /** Taggable resources by id, for CreateTags/DescribeTags. */
  taggable(id: string): { tags: Record<string, string>; type: string } | undefined {
    const instance = this.instances.get(id);
    if (instance) return { tags: instance.tags, type: "instance" };
    const group = this.securityGroups.get(id);
    if (group) return { tags: group.tags, type: "security-group" };
    const image = this.images.get(id);
    if (image) return { tags: image.tags, type: "image" };
    const snapshot = this.snapshots.get(id);
    if (snapshot) return { tags: snapshot.tags, type: "snapshot" };
    for (const keyPair of this.keyPairs.values()) if (keyPair.keyPairId === id) return { tags: keyPair.tags, type: "key-pair" };
    return undefined;
  }
}

/** An id in EC2's shape: prefix and 17 hex digits. */
export function newId(prefix: string): string {
  return `${prefix}-${randomBytes(9).toString("hex").slice(0, 17)}`;
}

export function tagSet(tags: Record<string, string>): Array<{ key: string; value: string }> {
  return Object.entries(tags).map(([key, value]) => ({ key, value }));
}

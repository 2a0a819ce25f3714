import { randomBytes } from "node:crypto";
import type { UserDataParts } from "./user-data.js";

/** The account the emulator's caller owns ("self"). */
export const ACCOUNT_ID = "123456789012";
/** The region of a request whose signature names none. */
export const REGION = "us-east-1";
/** Region of records visible in every region: the seeded public AMI, which has the same id everywhere. */
export const ANY_REGION = "*";
export const VPC_ID = "vpc-0kiln00000000000";
export const SUBNET_ID = "subnet-0kiln0000000000";
/** The device every AMI's root volume is attached as. */
export const ROOT_DEVICE = "/dev/xvda";

/** The AWS-managed EBS key EC2 encrypts with when no KmsKeyId is given (one per account and region). */
export const defaultKmsKeyId = (region: string): string => `arn:aws:kms:${region}:${ACCOUNT_ID}:alias/aws/ebs`;

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

export const VOLUME_TYPES = ["gp2", "gp3", "io1", "io2", "st1", "sc1", "standard"] as const;
export type VolumeType = (typeof VOLUME_TYPES)[number];

/** An EBS volume as block device mappings describe it (there are no volumes behind it: the container's disk is the disk). */
export interface EbsVolume {
  /** GiB. */
  volumeSize: number;
  volumeType: VolumeType;
  encrypted: boolean;
  /** The key as given (id, alias or ARN), or the region's default key; only when encrypted. */
  kmsKeyId: string | undefined;
}

/** A block device of an instance, from RunInstances' `BlockDeviceMapping.N` or the AMI's root device. */
export interface InstanceBlockDevice extends EbsVolume {
  deviceName: string;
  volumeId: string;
  deleteOnTermination: boolean;
  attachTime: Date;
  /** The AMI's snapshot for the root device; none for a new empty volume. */
  snapshotId: string | undefined;
  /** From RunInstances' `TagSpecification` for `volume`, and CreateTags on the volume id. */
  tags: Record<string, string>;
}

/**
 * A volume as DescribeVolumes shows it: an instance's block device, `in-use` (attached) until the instance is terminated; then
 * gone if it was to be deleted on termination, else `available` (detached) until DeleteVolume.
 */
export interface VolumeView {
  device: InstanceBlockDevice;
  instance: InstanceRecord;
  status: "in-use" | "available";
}

export interface SnapshotRecord {
  snapshotId: string;
  /** The region it was created in; other regions do not see it. */
  region: string;
  /** pending while the image behind it is being committed, then completed (or error if the commit failed). */
  state: "pending" | "completed" | "error";
  volumeSize: number;
  encrypted: boolean;
  kmsKeyId: string | undefined;
  startTime: Date;
  description: string;
  tags: Record<string, string>;
}

/** Who besides the owner may launch an AMI (ModifyImageAttribute's LaunchPermission); `Group=all` sets isPublic instead. */
export interface LaunchPermissions {
  userIds: string[];
  organizationArns: string[];
  organizationalUnitArns: string[];
}

export interface ImageRecord {
  imageId: string;
  /** The region it was created in ({@link ANY_REGION} for the seeded AMI); other regions answer InvalidAMIID.NotFound. */
  region: string;
  name: string;
  description: string;
  ownerId: string;
  /** pending until the commit finished and `transitionDelayMs` passed; failed when the commit failed. */
  state: "pending" | "available" | "failed";
  isPublic: boolean;
  launchPermissions: LaunchPermissions;
  creationDate: Date;
  /** Set by EnableImageDeprecation, cleared by DisableImageDeprecation. */
  deprecationTime: Date | undefined;
  architecture: string;
  /** The local Docker image instances of this AMI start from (a tag; CopyImage shares its source's). */
  dockerImage: string;
  snapshotId: string;
  /** The root device's mapping ({@link ROOT_DEVICE}); its snapshot has the same size and encryption. */
  rootVolume: EbsVolume;
  tags: Record<string, string>;
}

export interface InstanceRecord {
  instanceId: string;
  reservationId: string;
  imageId: string;
  /** Kept apart from the AMI: a deregistered AMI's Docker image must stay until its instances are gone. */
  dockerImage: string;
  /** Region of the RunInstances call: instances are listed in every region, but their placement and default key are its. */
  region: string;
  instanceType: string;
  keyName: string | undefined;
  groupIds: string[];
  subnetId: string;
  iamInstanceProfile: { arn: string; id: string } | undefined;
  clientToken: string | undefined;
  blockDevices: InstanceBlockDevice[];
  /** User data as given (decoded from base64; empty when none): what cloud-init's NoCloud seed gets. */
  rawUserData: Buffer;
  /** The same, split at RunInstances for the emulator's own runner (images without cloud-init). */
  userData: UserDataParts;
  state: InstanceStateName;
  stateReason: string | undefined;
  launchTime: Date;
  /** 127.0.0.N: the private address, and the public one unless launched with AssociatePublicIpAddress=false; sshd listens on its port 22. Kept while stopped. */
  ipAddress: string | undefined;
  hasPublicIp: boolean;
  /** Kept while the instance is stopped (CreateImage commits it, StartInstances starts it again). */
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
  /** RunInstances' ClientToken → the reservation it launched and the request's parameters (a retry must match them). */
  readonly clientTokens = new Map<string, { reservationId: string; request: string }>();
  /** Detached volumes removed by DeleteVolume (or stop()); volumes exist only as instances' block devices. */
  readonly deletedVolumes = new Set<string>();

  /** Every volume that still exists, of every region (volumes follow their instances, which are global). */
  volumes(): VolumeView[] {
    const views: VolumeView[] = [];
    for (const instance of this.instances.values()) {
      for (const device of instance.blockDevices) {
        if (instance.state !== "terminated") views.push({ device, instance, status: "in-use" });
        else if (!device.deleteOnTermination && !this.deletedVolumes.has(device.volumeId))
          views.push({ device, instance, status: "available" });
      }
    }
    return views;
  }

  /** The image with this id if the region sees it (its own, or the seeded one). */
  image(id: string, region: string): ImageRecord | undefined {
    const image = this.images.get(id);
    return image && visibleIn(image, region) ? image : undefined;
  }

  imagesIn(region: string): ImageRecord[] {
    return [...this.images.values()].filter((image) => visibleIn(image, region));
  }

  snapshot(id: string, region: string): SnapshotRecord | undefined {
    const snapshot = this.snapshots.get(id);
    return snapshot && visibleIn(snapshot, region) ? snapshot : undefined;
  }

  snapshotsIn(region: string): SnapshotRecord[] {
    return [...this.snapshots.values()].filter((snapshot) => visibleIn(snapshot, region));
  }

  /** Taggable resources by id, for CreateTags/DescribeTags: images and snapshots only in their region, the rest everywhere. */
  taggable(id: string, region: string): { tags: Record<string, string>; type: string } | undefined {
    const instance = this.instances.get(id);
    if (instance) return { tags: instance.tags, type: "instance" };
    const group = this.securityGroups.get(id);
    if (group) return { tags: group.tags, type: "security-group" };
    const image = this.image(id, region);
    if (image) return { tags: image.tags, type: "image" };
    const snapshot = this.snapshot(id, region);
    if (snapshot) return { tags: snapshot.tags, type: "snapshot" };
    for (const keyPair of this.keyPairs.values()) if (keyPair.keyPairId === id) return { tags: keyPair.tags, type: "key-pair" };
    const volume = this.volumes().find((v) => v.device.volumeId === id);
    if (volume) return { tags: volume.device.tags, type: "volume" };
    return undefined;
  }
}

const visibleIn = (record: { region: string }, region: string): boolean => record.region === region || record.region === ANY_REGION;

/** An id in EC2's shape: prefix and 17 hex digits. */
export function newId(prefix: string): string {
  return `${prefix}-${randomBytes(9).toString("hex").slice(0, 17)}`;
}

export function tagSet(tags: Record<string, string>): Array<{ key: string; value: string }> {
  return Object.entries(tags).map(([key, value]) => ({ key, value }));
}

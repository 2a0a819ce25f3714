import { createHash } from "node:crypto";
import type { EmulatorContext } from "../context.js";
import { Ec2Error, missingParameter, notFound } from "../errors.js";
import type { QueryParams } from "../query.js";
import {
  ACCOUNT_ID,
  defaultKmsKeyId,
  type ImageRecord,
  type InstanceBlockDevice,
  ROOT_DEVICE,
  SUBNET_ID,
  VOLUME_TYPES,
  type VolumeType,
} from "../state.js";

/** RunInstances' parameters beyond image, key and user data, read and checked as EC2 checks them. */

export interface LaunchNetwork {
  subnetId: string;
  groupIds: string[];
  /** False only with `NetworkInterface.1.AssociatePublicIpAddress=false`: then the instance has just its private address. */
  hasPublicIp: boolean;
}

/**
 * Either the instance-level form (`SubnetId`, `SecurityGroupId.N`) or the network-interface form (`NetworkInterface.1.DeviceIndex=0`,
 * `.SubnetId`, `.AssociatePublicIpAddress`, `.SecurityGroupId.N`), not both, as on EC2. An instance has one interface (its one
 * loopback address), so only DeviceIndex 0 is taken. Subnets are not modelled: any `subnet-…` id is recorded as given.
 */
export function launchNetwork(ctx: EmulatorContext, params: QueryParams): LaunchNetwork {
  const interfaces = params.indices("NetworkInterface");
  const instanceGroups = params.list("SecurityGroupId");
  const instanceSubnet = params.optional("SubnetId");
  let network: LaunchNetwork = { subnetId: instanceSubnet ?? SUBNET_ID, groupIds: instanceGroups, hasPublicIp: true };
  if (interfaces.length > 0) {
    if (interfaces.length > 1)
      throw new Ec2Error(
        "InvalidParameterValue",
        "The emulator gives an instance one network interface: pass only NetworkInterface.1 (DeviceIndex 0)",
      );
    const prefix = `NetworkInterface.${interfaces[0]}`;
    const deviceIndex = params.int(`${prefix}.DeviceIndex`);
    if (deviceIndex === undefined) throw new Ec2Error("InvalidParameterValue", "Each network interface requires a device index.");
    if (deviceIndex !== 0)
      throw new Ec2Error(
        "InvalidParameterValue",
        `The emulator supports only the primary network interface (DeviceIndex 0), not ${deviceIndex}`,
      );
    if (instanceGroups.length > 0)
      throw new Ec2Error(
        "InvalidParameterCombination",
        "Network interfaces and an instance-level security groups may not be specified on the same request",
      );
    if (instanceSubnet !== undefined)
      throw new Ec2Error(
        "InvalidParameterCombination",
        "Network interfaces and an instance-level subnet ID may not be specified on the same request",
      );
    network = {
      subnetId: params.optional(`${prefix}.SubnetId`) ?? SUBNET_ID,
      groupIds: params.list(`${prefix}.SecurityGroupId`),
      hasPublicIp: params.bool(`${prefix}.AssociatePublicIpAddress`) ?? true,
    };
  }
  if (!network.subnetId.startsWith("subnet-"))
    throw new Ec2Error("InvalidSubnetID.NotFound", `The subnet ID '${network.subnetId}' does not exist`);
  for (const id of network.groupIds) if (!ctx.state.securityGroups.has(id)) throw notFound("group", id);
  return network;
}

/** `family.size` (t3.micro, m7i.metal-24xl, u-6tb1.metal); EC2's default when absent. */
export function instanceType(params: QueryParams): string {
  const type = params.get("InstanceType") ?? "m1.small";
  if (!/^[a-z][a-z0-9-]*\.[a-z0-9-]+$/.test(type)) throw new Ec2Error("InvalidParameterValue", `Invalid value '${type}' for InstanceType.`);
  return type;
}

/** `IamInstanceProfile.Arn` or `.Name` (then the ARN is the caller's account's); the id is derived from the ARN, stable like EC2's. */
export function iamInstanceProfile(params: QueryParams): { arn: string; id: string } | undefined {
  const givenArn = params.optional("IamInstanceProfile.Arn");
  const name = params.optional("IamInstanceProfile.Name");
  if (givenArn === undefined && name === undefined) return undefined;
  if (givenArn !== undefined && !/^arn:aws[\w-]*:iam::\d{12}:instance-profile\/.+$/.test(givenArn)) {
    throw new Ec2Error(
      "InvalidParameterValue",
      `Value (${givenArn}) for parameter iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN`,
    );
  }
  const arn = givenArn ?? `arn:aws:iam::${ACCOUNT_ID}:instance-profile/${name}`;
  return { arn, id: `AIPA${createHash("sha256").update(arn).digest("hex").slice(0, 17).toUpperCase()}` };
}

const MAX_VOLUME_SIZE = 16_384;

/** A block device as RunInstances asks for it; each instance of the launch gets its own volume id. */
export type LaunchBlockDevice = Omit<InstanceBlockDevice, "volumeId" | "tags">;

/**
 * The instance's volumes: the AMI's root device (its size, type and encryption), changed by a `BlockDeviceMapping.N` for
 * /dev/xvda, plus one per other device named. The root may grow, never shrink below its snapshot; an encrypted snapshot gives an
 * encrypted volume (with its key unless KmsKeyId names another); otherwise `Encrypted=true` uses KmsKeyId or the region's default
 * key. `NoDevice` and `VirtualName` (instance store) mappings are ignored.
 */
export function blockDevices(params: QueryParams, image: ImageRecord, region: string): LaunchBlockDevice[] {
  const attachTime = new Date();
  const root: LaunchBlockDevice = {
    deviceName: ROOT_DEVICE,
    deleteOnTermination: true,
    attachTime,
    snapshotId: image.snapshotId,
    ...image.rootVolume,
  };
  const devices = [root];
  for (const index of params.indices("BlockDeviceMapping")) {
    const prefix = `BlockDeviceMapping.${index}`;
    if (params.get(`${prefix}.NoDevice`) !== undefined || params.get(`${prefix}.VirtualName`) !== undefined) continue;
    const deviceName = params.get(`${prefix}.DeviceName`);
    if (!deviceName) throw missingParameter(`${prefix}.DeviceName`);
    const volumeSize = params.int(`${prefix}.Ebs.VolumeSize`);
    const volumeType = params.get(`${prefix}.Ebs.VolumeType`);
    const encrypted = params.bool(`${prefix}.Ebs.Encrypted`);
    const kmsKeyId = params.get(`${prefix}.Ebs.KmsKeyId`);
    const deleteOnTermination = params.bool(`${prefix}.Ebs.DeleteOnTermination`);
    if (volumeType !== undefined && !isVolumeType(volumeType)) {
      throw new Ec2Error(
        "InvalidParameterValue",
        `Value (${volumeType}) for parameter volumeType is invalid. Valid volume types are: ${VOLUME_TYPES.join(", ")}`,
      );
    }
    if (volumeSize !== undefined && volumeSize > MAX_VOLUME_SIZE)
      throw new Ec2Error("InvalidParameterValue", `Volume of ${volumeSize}GiB is too large; maximum is ${MAX_VOLUME_SIZE}GiB`);
    if (kmsKeyId !== undefined && encrypted !== true)
      throw new Ec2Error("InvalidParameterDependency", "The parameter KmsKeyId requires the parameter Encrypted to be set.");
    if (devices.slice(1).some((device) => device.deviceName === deviceName)) {
      throw new Ec2Error("InvalidBlockDeviceMapping", `The device '${deviceName}' is used in more than one block-device mapping`);
    }
    if (deviceName === ROOT_DEVICE) {
      const minimum = image.rootVolume.volumeSize;
      if (volumeSize !== undefined && volumeSize < minimum) {
        throw new Ec2Error(
          "InvalidBlockDeviceMapping",
          `Volume of size ${volumeSize}GB is smaller than snapshot '${image.snapshotId}', expect size >= ${minimum}GB`,
        );
      }
      const encrypt = image.rootVolume.encrypted || encrypted === true;
      Object.assign(root, {
        volumeSize: volumeSize ?? root.volumeSize,
        volumeType: volumeType ?? root.volumeType,
        deleteOnTermination: deleteOnTermination ?? true,
        encrypted: encrypt,
        kmsKeyId: encrypt ? (kmsKeyId ?? image.rootVolume.kmsKeyId ?? defaultKmsKeyId(region)) : undefined,
      });
      continue;
    }
    if (volumeSize === undefined)
      throw new Ec2Error(
        "MissingParameter",
        `The request must contain the parameter ${prefix}.Ebs.VolumeSize (the emulator has no snapshots to restore ${deviceName} from)`,
      );
    if (volumeSize < 1) throw new Ec2Error("InvalidParameterValue", `Volume of ${volumeSize}GiB is too small; minimum is 1GiB`);
    devices.push({
      deviceName,
      volumeSize,
      volumeType: volumeType ?? "gp2",
      deleteOnTermination: deleteOnTermination ?? true,
      encrypted: encrypted === true,
      kmsKeyId: encrypted === true ? (kmsKeyId ?? defaultKmsKeyId(region)) : undefined,
      attachTime,
      snapshotId: undefined,
    });
  }
  return devices;
}

const isVolumeType = (value: string): value is VolumeType => (VOLUME_TYPES as readonly string[]).includes(value);

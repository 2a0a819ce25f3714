import type { EmulatorContext, RequestContext } from "../context.js";
import { Ec2Error, notFound } from "../errors.js";
import { bootInstance, terminateInstance } from "../lifecycle.js";
import { matchesFilters, type QueryParams } from "../query.js";
import { ACCOUNT_ID, type InstanceRecord, newId, REGION, ROOT_DEVICE, STATE_CODES, tagSet, VPC_ID } from "../state.js";
import { parseUserData } from "../user-data.js";
import { fields, set } from "../xml.js";
import { blockDevices, iamInstanceProfile, instanceType, launchNetwork } from "./launch-parameters.js";
import type { ActionHandler } from "./types.js";

/**
 * Launches MinCount instances of an AMI the request's region sees. With a `ClientToken` seen before, answers the reservation that
 * token launched (as it is now) instead of launching again, and IdempotentParameterMismatch if the other parameters differ.
 */
export const RunInstances: ActionHandler = (ctx, params) => {
  const clientToken = params.get("ClientToken");
  const request = params.fingerprint(["ClientToken"]);
  const earlier = clientToken === undefined ? undefined : ctx.state.clientTokens.get(clientToken);
  if (earlier) {
    if (earlier.request !== request)
      throw new Ec2Error(
        "IdempotentParameterMismatch",
        "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).",
      );
    const members = [...ctx.state.instances.values()].filter((instance) => instance.reservationId === earlier.reservationId);
    return reservationXml(ctx, earlier.reservationId, members);
  }
  const imageId = params.require("ImageId");
  const image = ctx.state.image(imageId, ctx.region);
  if (!image) throw notFound("image", imageId);
  if (image.state !== "available") throw new Ec2Error("InvalidAMIID.Unavailable", `The image id '[${imageId}]' is not available`);
  const keyName = params.get("KeyName");
  const keyPair = keyName === undefined ? undefined : ctx.state.keyPairs.get(keyName);
  if (keyName !== undefined && !keyPair) throw notFound("keyPair", keyName);
  const network = launchNetwork(ctx, params);
  const type = instanceType(params);
  const profile = iamInstanceProfile(params);
  const count = params.int("MinCount") ?? 1;
  if (count < 1 || count > 20) throw new Ec2Error("InvalidParameterValue", `MinCount ${count} is out of range 1-20`);
  const tags = params.tagSpecifications("instance");
  const volumeTags = params.tagSpecifications("volume");
  const devices = blockDevices(params, image, ctx.region);
  const encoded = params.get("UserData");
  const rawUserData = encoded === undefined ? Buffer.alloc(0) : Buffer.from(encoded, "base64");
  // MIME multipart is split here, once: the container gets the scripts to run and the notes to log (for images without
  // cloud-init), and the user data as given for cloud-init's NoCloud seed (for images with it).
  const userData = parseUserData(encoded === undefined ? undefined : rawUserData.toString("utf8"));
  const reservationId = newId("r");
  const now = Date.now();
  const instances: InstanceRecord[] = [];
  for (let i = 0; i < count; i++) {
    const instance: InstanceRecord = {
      instanceId: newId("i"),
      reservationId,
      imageId,
      dockerImage: image.dockerImage,
      region: ctx.region,
      instanceType: type,
      keyName,
      groupIds: [...network.groupIds],
      subnetId: network.subnetId,
      iamInstanceProfile: profile,
      clientToken,
      blockDevices: devices.map((device) => ({ ...device, volumeId: newId("vol"), tags: { ...volumeTags } })),
      rawUserData,
      userData,
      state: "pending",
      stateReason: undefined,
      launchTime: new Date(now),
      ipAddress: undefined,
      hasPublicIp: network.hasPublicIp,
      containerId: undefined,
      visibleAt: now + ctx.eventualConsistencyMs,
      tags: { ...tags },
    };
    ctx.state.instances.set(instance.instanceId, instance);
    bootInstance(ctx, instance, image.dockerImage, keyPair?.publicKey);
    instances.push(instance);
  }
  if (clientToken !== undefined) ctx.state.clientTokens.set(clientToken, { reservationId, request });
  return reservationXml(ctx, reservationId, instances);
};

function reservationXml(ctx: EmulatorContext, reservationId: string, instances: InstanceRecord[]): string {
  return fields({ reservationId, ownerId: ACCOUNT_ID, groupSet: set([]), instancesSet: set(instances.map((i) => instanceItem(ctx, i))) });
}

function instanceFilterValues(instance: InstanceRecord, name: string): string[] | undefined {
  const publicIp = instance.hasPublicIp && instance.ipAddress ? [instance.ipAddress] : [];
  const values: Record<string, string[]> = {
    "instance-id": [instance.instanceId],
    "instance-state-name": [instance.state],
    "instance-state-code": [String(STATE_CODES[instance.state])],
    "image-id": [instance.imageId],
    "instance-type": [instance.instanceType],
    "key-name": instance.keyName ? [instance.keyName] : [],
    "reservation-id": [instance.reservationId],
    "instance.group-id": instance.groupIds,
    "subnet-id": [instance.subnetId],
    "vpc-id": [VPC_ID],
    "client-token": instance.clientToken ? [instance.clientToken] : [],
    "iam-instance-profile.arn": instance.iamInstanceProfile ? [instance.iamInstanceProfile.arn] : [],
    "block-device-mapping.device-name": instance.blockDevices.map((device) => device.deviceName),
    "block-device-mapping.volume-id": instance.blockDevices.map((device) => device.volumeId),
    "ip-address": publicIp,
    "private-ip-address": instance.ipAddress ? [instance.ipAddress] : [],
  };
  return values[name];
}

/** Instances of every region (they are global in the emulator); each shows the placement of the region it was launched in. */
export const DescribeInstances: ActionHandler = (ctx, params) => {
  const ids = params.list("InstanceId");
  const now = Date.now();
  // Unknown, and for a while after launch also just-launched, ids answer NotFound: EC2 is eventually consistent.
  for (const id of ids) {
    const instance = ctx.state.instances.get(id);
    if (!instance || instance.visibleAt > now) throw notFound("instance", id);
  }
  const filters = params.filters();
  const selected = [...ctx.state.instances.values()].filter(
    (i) =>
      i.visibleAt <= now &&
      (ids.length === 0 || ids.includes(i.instanceId)) &&
      matchesFilters(filters, i.tags, (name) => instanceFilterValues(i, name)),
  );
  const reservations = new Map<string, InstanceRecord[]>();
  for (const instance of selected)
    reservations.set(instance.reservationId, [...(reservations.get(instance.reservationId) ?? []), instance]);
  return fields({
    reservationSet: set(
      [...reservations].map(([reservationId, members]) => ({
        reservationId,
        ownerId: ACCOUNT_ID,
        groupSet: set([]),
        instancesSet: set(members.map((i) => instanceItem(ctx, i))),
      })),
    ),
  });
};

/** The instances `InstanceId.N` names; NotFound for the first unknown one, before anything changes. */
export function requestedInstances(ctx: RequestContext, params: QueryParams): InstanceRecord[] {
  const ids = params.list("InstanceId");
  if (ids.length === 0) throw new Ec2Error("MissingParameter", "The request must contain the parameter InstanceId");
  return ids.map((id) => {
    const instance = ctx.state.instances.get(id);
    if (!instance) throw notFound("instance", id);
    return instance;
  });
}

/** From any state, stopped and stopping included. */
export const TerminateInstances: ActionHandler = (ctx, params) => {
  const changes = requestedInstances(ctx, params).map((instance) => {
    const previous = instance.state;
    terminateInstance(ctx, instance);
    return stateChange(instance, previous);
  });
  return fields({ instancesSet: set(changes) });
};

const stateOf = (name: InstanceRecord["state"]) => ({ code: STATE_CODES[name], name });

/** An `instancesSet` item of Terminate/Stop/StartInstances. */
export const stateChange = (instance: InstanceRecord, previous: InstanceRecord["state"]) => ({
  instanceId: instance.instanceId,
  currentState: stateOf(instance.state),
  previousState: stateOf(previous),
});

/** EC2's internal DNS domain: ec2.internal in us-east-1, <region>.compute.internal elsewhere. */
const internalDomain = (region: string): string => (region === REGION ? "ec2.internal" : `${region}.compute.internal`);

function instanceItem(ctx: EmulatorContext, instance: InstanceRecord) {
  const groups = instance.groupIds.map((groupId) => ({ groupId, groupName: ctx.state.securityGroups.get(groupId)?.groupName ?? "" }));
  const dns = instance.ipAddress ? `ip-${instance.ipAddress.replace(/\./g, "-")}.${internalDomain(instance.region)}` : "";
  const publicIp = instance.hasPublicIp ? instance.ipAddress : undefined;
  // Volumes are detached once the instance is gone, as EC2 shows it.
  const devices = instance.state === "terminated" ? [] : instance.blockDevices;
  return {
    instanceId: instance.instanceId,
    imageId: instance.imageId,
    instanceState: stateOf(instance.state),
    privateDnsName: dns,
    dnsName: publicIp ? dns : "",
    reason: instance.stateReason,
    keyName: instance.keyName,
    amiLaunchIndex: 0,
    instanceType: instance.instanceType,
    launchTime: instance.launchTime.toISOString(),
    placement: { availabilityZone: `${instance.region}a`, tenancy: "default" },
    monitoring: { state: "disabled" },
    subnetId: instance.subnetId,
    vpcId: VPC_ID,
    privateIpAddress: instance.ipAddress,
    ipAddress: publicIp,
    groupSet: set(groups),
    stateReason: instance.stateReason ? { code: instance.stateReason.split(":")[0], message: instance.stateReason } : undefined,
    architecture: "x86_64",
    rootDeviceType: "ebs",
    rootDeviceName: ROOT_DEVICE,
    blockDeviceMapping: set(
      devices.map((device) => ({
        deviceName: device.deviceName,
        ebs: {
          volumeId: device.volumeId,
          status: "attached",
          attachTime: device.attachTime.toISOString(),
          deleteOnTermination: device.deleteOnTermination,
        },
      })),
    ),
    virtualizationType: "hvm",
    clientToken: instance.clientToken,
    iamInstanceProfile: instance.iamInstanceProfile
      ? { arn: instance.iamInstanceProfile.arn, id: instance.iamInstanceProfile.id }
      : undefined,
    hypervisor: "xen",
    tagSet: set(tagSet(instance.tags)),
  };
}

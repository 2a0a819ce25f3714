import type { EmulatorContext } from "../context.js";
import { Ec2Error, notFound } from "../errors.js";
import { bootInstance, terminateInstance } from "../lifecycle.js";
import { matchesFilters } from "../query.js";
import { ACCOUNT_ID, AVAILABILITY_ZONE, type InstanceRecord, newId, STATE_CODES, tagSet, VPC_ID } from "../state.js";
import { fields, set } from "../xml.js";
import type { ActionHandler } from "./types.js";

export const RunInstances: ActionHandler = (ctx, params) => {
  const imageId = params.require("ImageId");
  const image = ctx.state.images.get(imageId);
  if (!image) throw notFound("image", imageId);
  if (image.state !== "available") throw new Ec2Error("InvalidAMIID.Unavailable", `The image id '[${imageId}]' is not available`);
  const keyName = params.get("KeyName");
  const keyPair = keyName === undefined ? undefined : ctx.state.keyPairs.get(keyName);
  if (keyName !== undefined && !keyPair) throw notFound("keyPair", keyName);
  const groupIds = params.list("SecurityGroupId");
  for (const id of groupIds) if (!ctx.state.securityGroups.has(id)) throw notFound("group", id);
  const count = params.int("MinCount") ?? 1;
  if (count < 1 || count > 20) throw new Ec2Error("InvalidParameterValue", `MinCount ${count} is out of range 1-20`);
  const encoded = params.get("UserData");
  const userData = encoded === undefined ? undefined : Buffer.from(encoded, "base64").toString("utf8");
  const reservationId = newId("r");
  const now = Date.now();
  const instances: InstanceRecord[] = [];
  for (let i = 0; i < count; i++) {
    const instance: InstanceRecord = {
      instanceId: newId("i"),
      reservationId,
      imageId,
      dockerImage: image.dockerImage,
      instanceType: params.get("InstanceType") ?? "m1.small",
      keyName,
      groupIds,
      userData,
      state: "pending",
      stateReason: undefined,
      launchTime: new Date(now),
      ipAddress: undefined,
      containerId: undefined,
      visibleAt: now + ctx.eventualConsistencyMs,
      tags: params.tagSpecifications("instance"),
    };
    ctx.state.instances.set(instance.instanceId, instance);
    bootInstance(ctx, instance, image.dockerImage, keyPair?.publicKey);
    instances.push(instance);
  }
  return fields({ reservationId, ownerId: ACCOUNT_ID, groupSet: set([]), instancesSet: set(instances.map((i) => instanceItem(ctx, i))) });
};

function instanceFilterValues(instance: InstanceRecord, name: string): string[] | undefined {
  const values: Record<string, string[]> = {
    "instance-id": [instance.instanceId],
    "instance-state-name": [instance.state],
    "instance-state-code": [String(STATE_CODES[instance.state])],
    "image-id": [instance.imageId],
    "instance-type": [instance.instanceType],
    "key-name": instance.keyName ? [instance.keyName] : [],
    "reservation-id": [instance.reservationId],
    "instance.group-id": instance.groupIds,
    "ip-address": instance.ipAddress ? [instance.ipAddress] : [],
    "private-ip-address": instance.ipAddress ? [instance.ipAddress] : [],
  };
  return values[name];
}

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
    (i) => i.visibleAt <= now && (ids.length === 0 || ids.includes(i.instanceId)) && matchesFilters(filters, i.tags, (name) => instanceFilterValues(i, name)),
  );
  const reservations = new Map<string, InstanceRecord[]>();
  for (const instance of selected) reservations.set(instance.reservationId, [...(reservations.get(instance.reservationId) ?? []), instance]);
  return fields({
    reservationSet: set(
      [...reservations].map(([reservationId, members]) => ({ reservationId, ownerId: ACCOUNT_ID, groupSet: set([]), instancesSet: set(members.map((i) => instanceItem(ctx, i))) })),
    ),
  });
};

export const TerminateInstances: ActionHandler = (ctx, params) => {
  const ids = params.list("InstanceId");
  if (ids.length === 0) throw new Ec2Error("MissingParameter", "The request must contain the parameter InstanceId");
  const instances = ids.map((id) => {
    const instance = ctx.state.instances.get(id);
    if (!instance) throw notFound("instance", id);
    return instance;
  });
  const changes = instances.map((instance) => {
    const previous = instance.state;
    terminateInstance(ctx, instance);
    return { instanceId: instance.instanceId, currentState: stateOf(instance.state), previousState: stateOf(previous) };
  });
  return fields({ instancesSet: set(changes) });
};

const stateOf = (name: InstanceRecord["state"]) => ({ code: STATE_CODES[name], name });

function instanceItem(ctx: EmulatorContext, instance: InstanceRecord) {
  const groups = instance.groupIds.map((groupId) => ({ groupId, groupName: ctx.state.securityGroups.get(groupId)?.groupName ?? "" }));
  const dns = instance.ipAddress ? `ip-${instance.ipAddress.replace(/\./g, "-")}.ec2.internal` : "";
  return {
    instanceId: instance.instanceId,
    imageId: instance.imageId,
    instanceState: stateOf(instance.state),
    privateDnsName: dns,
    dnsName: dns,
    reason: instance.stateReason,
    keyName: instance.keyName,
    amiLaunchIndex: 0,
    instanceType: instance.instanceType,
    launchTime: instance.launchTime.toISOString(),
    placement: { availabilityZone: AVAILABILITY_ZONE, tenancy: "default" },
    monitoring: { state: "disabled" },
    subnetId: "subnet-0kiln0000000000",
    vpcId: VPC_ID,
    privateIpAddress: instance.ipAddress,
    ipAddress: instance.ipAddress,
    groupSet: set(groups),
    stateReason: instance.stateReason ? { code: instance.stateReason.split(":")[0], message: instance.stateReason } : undefined,
    architecture: "x86_64",
    rootDeviceType: "ebs",
    rootDeviceName: "/dev/xvda",
    virtualizationType: "hvm",
    hypervisor: "xen",
    tagSet: set(tagSet(instance.tags)),
  };
}

import { randomUUID } from "node:crypto";
import {
  DescribeInstancesCommand,
  type Instance,
  type RunInstancesCommandInput,
  RunInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import { KilnError, type BakeContext, type Logger } from "@kiln/core";
import type { Access } from "./access.js";
import { type Ec2Api, isNotFound } from "./api.js";
import { once } from "./once.js";
import type { Ec2Options } from "./options.js";
import { tagSpecs } from "./tags.js";
import { type Polling, pollingOf, waitFor } from "./wait.js";

export interface LaunchRequest {
  imageId: string;
  /** Unique name: the instance's Name tag, how a cleanup finds it when RunInstances' answer never came. */
  name: string;
  access: Access;
  userData: string | undefined;
}

/** A running instance and the address Kiln reaches it at. */
export interface RunningInstance {
  instanceId: string;
  address: string;
  /** Terminates the instance and waits until it is gone. Safe to call again. */
  terminate(signal?: AbortSignal): Promise<void>;
}

/**
 * RunInstances and wait until running. The termination is registered before the call: a Ctrl-C (or a lost answer) during
 * RunInstances must not leave an instance behind, so without an id the cleanup finds it by its unique Name tag.
 */
export async function launchInstance(api: Ec2Api, ctx: BakeContext, opts: Ec2Options, request: LaunchRequest): Promise<RunningInstance> {
  const polling = pollingOf(opts);
  let instanceId: string | undefined;
  // Shared by the machine's disposal and the cleanup, so the instance is terminated once; a failed attempt is forgotten, so
  // the cleanup's retry calls EC2 again instead of repeating the old failure.
  const terminate = once(async (signal) => {
    const calls = signal ? api.withSignal(signal) : api;
    const ids = instanceId ? [instanceId] : await findByName(calls, request.name);
    await Promise.all(ids.map((id) => terminateInstance(calls, id, polling, ctx.log, signal)));
  });
  ctx.defer(terminate, {
    resource: `instance ${request.name}`,
    manualCommand: () =>
      `aws ec2 terminate-instances --region ${api.region} --instance-ids ${instanceId ?? `<id of the instance named ${request.name}>`}`,
  });

  const reservation = await api.call(
    "RunInstances",
    (client, http) => client.send(new RunInstancesCommand(runInput(ctx, opts, request)), http),
    {
      signal: ctx.signal,
      // The key pair and group were just created: EC2 may not know them everywhere yet.
      notYet: ["InvalidKeyPair.NotFound", "InvalidGroup.NotFound"],
    },
  );
  instanceId = reservation.Instances?.[0]?.InstanceId;
  if (!instanceId) throw new KilnError("E_LAUNCH", "EC2 RunInstances answered without an instance id");
  const id = instanceId;
  ctx.log.info(`launched ${id} (${opts.instance_type}) from ${request.imageId}`);
  const instance = await waitFor({
    what: `instance ${id} to be running`,
    check: () => describeInstance(api, id, ctx.signal),
    done: (found) =>
      found?.State?.Name === "running"
        ? true
        : isGone(found)
          ? `it is ${found?.State?.Name}: ${found?.StateReason?.Message ?? "no reason given"}`
          : false,
    polling,
    signal: ctx.signal,
    log: ctx.log,
  });
  return { instanceId: id, address: addressOf(instance as Instance, opts), terminate };
}

function runInput(ctx: BakeContext, opts: Ec2Options, request: LaunchRequest): RunInstancesCommandInput {
  const groups = request.access.securityGroupIds;
  // With associate_public_ip the network interface is spelled out, as EC2 requires; the groups then belong to it.
  const network =
    opts.associate_public_ip === undefined
      ? { ...(opts.subnet_id ? { SubnetId: opts.subnet_id } : {}), SecurityGroupIds: groups }
      : {
          NetworkInterfaces: [
            {
              DeviceIndex: 0,
              AssociatePublicIpAddress: opts.associate_public_ip,
              DeleteOnTermination: true,
              Groups: groups,
              ...(opts.subnet_id ? { SubnetId: opts.subnet_id } : {}),
            },
          ],
        };
  const profile = opts.iam_instance_profile;
  return {
    ImageId: request.imageId,
    InstanceType: opts.instance_type as RunInstancesCommandInput["InstanceType"],
    MinCount: 1,
    MaxCount: 1,
    // Makes the call idempotent: a retry after a lost answer returns the same instance instead of launching a second.
    ClientToken: randomUUID(),
    KeyName: request.access.keyName,
    ...network,
    ...(request.userData ? { UserData: Buffer.from(request.userData).toString("base64") } : {}),
    ...(profile ? { IamInstanceProfile: profile.startsWith("arn:") ? { Arn: profile } : { Name: profile } } : {}),
    ...(opts.launch_block_devices ? { BlockDeviceMappings: opts.launch_block_devices.map(blockDevice) } : {}),
    InstanceInitiatedShutdownBehavior: "terminate",
    TagSpecifications: tagSpecs(
      ["instance", { ...opts.run_tags, ...ctx.resourceLabels, Name: request.name }],
      ["volume", { ...ctx.resourceLabels, Name: request.name }],
    ),
  };
}

function blockDevice(device: NonNullable<Ec2Options["launch_block_devices"]>[number]) {
  return {
    DeviceName: device.device_name,
    Ebs: {
      ...(device.volume_size !== undefined ? { VolumeSize: device.volume_size } : {}),
      ...(device.volume_type ? { VolumeType: device.volume_type } : {}),
      ...(device.iops !== undefined ? { Iops: device.iops } : {}),
      DeleteOnTermination: device.delete_on_termination ?? true,
      ...(device.encrypted !== undefined ? { Encrypted: device.encrypted } : {}),
      ...(device.kms_key_id ? { KmsKeyId: device.kms_key_id } : {}),
    },
  };
}

function addressOf(instance: Instance, opts: Ec2Options): string {
  const usePrivate = (opts.ssh_interface ?? (opts.associate_public_ip === false ? "private_ip" : "public_ip")) === "private_ip";
  const address = usePrivate ? instance.PrivateIpAddress : instance.PublicIpAddress;
  if (!address) {
    throw new KilnError("E_LAUNCH", `instance ${instance.InstanceId} has no ${usePrivate ? "private" : "public"} IP address`, {
      hint: usePrivate
        ? "check the subnet"
        : "set associate_public_ip: true (and subnet_id), or ssh_interface: private_ip when Kiln runs inside the VPC",
    });
  }
  return address;
}

/**
 * DescribeInstances of one id. NotFound right after RunInstances is eventual consistency and retried; once the instance was
 * seen (`seen`), NotFound means it is gone and answers undefined.
 */
async function describeInstance(api: Ec2Api, instanceId: string, signal?: AbortSignal, seen = false): Promise<Instance | undefined> {
  try {
    const result = await api.call(
      "DescribeInstances",
      (client, http) => client.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }), http),
      {
        signal,
        notYet: seen ? [] : ["InvalidInstanceID.NotFound"],
      },
    );
    return result.Reservations?.[0]?.Instances?.[0];
  } catch (error) {
    if (seen && isNotFound((error as Error).cause)) return undefined;
    throw error;
  }
}

const isGone = (instance: Instance | undefined) => ["shutting-down", "terminated"].includes(instance?.State?.Name ?? "");

async function findByName(api: Ec2Api, name: string): Promise<string[]> {
  const result = await api.call("DescribeInstances", (client) =>
    client.send(
      new DescribeInstancesCommand({
        Filters: [
          { Name: "tag:Name", Values: [name] },
          { Name: "instance-state-name", Values: ["pending", "running", "stopping", "stopped"] },
        ],
      }),
    ),
  );
  return (result.Reservations ?? [])
    .flatMap((reservation) => (reservation.Instances ?? []).map((instance) => instance.InstanceId ?? ""))
    .filter(Boolean);
}

/** Terminates and waits for `terminated`, so the security group can go next. An instance already gone is fine. */
async function terminateInstance(
  api: Ec2Api,
  instanceId: string,
  polling: Polling,
  log: Logger | undefined,
  signal: AbortSignal | undefined,
): Promise<void> {
  try {
    await api.call("TerminateInstances", (client) => client.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] })), {
      code: "E_CLEANUP",
      notYet: ["InvalidInstanceID.NotFound"],
    });
  } catch (error) {
    if (isNotFound((error as Error).cause)) return;
    throw error;
  }
  await waitFor({
    what: `instance ${instanceId} to be terminated`,
    check: async () => (await describeInstance(api, instanceId, undefined, true))?.State?.Name,
    done: (state) => state === undefined || state === "terminated",
    polling,
    log,
    signal,
    code: "E_CLEANUP",
  });
}

/** Stops the instance before CreateImage (consistent file systems, as Packer does), waiting for `stopped`. */
export async function stopInstance(api: Ec2Api, ctx: BakeContext, opts: Ec2Options, instanceId: string): Promise<void> {
  await api.call("StopInstances", (client, http) => client.send(new StopInstancesCommand({ InstanceIds: [instanceId] }), http), {
    signal: ctx.signal,
    code: "E_CAPTURE",
  });
  await waitFor({
    what: `instance ${instanceId} to be stopped`,
    check: () => describeInstance(api, instanceId, ctx.signal),
    done: (found) => (found?.State?.Name === "stopped" ? true : isGone(found) ? `it is ${found?.State?.Name}` : false),
    polling: pollingOf(opts),
    signal: ctx.signal,
    log: ctx.log,
    code: "E_CAPTURE",
  });
}

import { randomBytes } from "node:crypto";
import {
  CopyImageCommand,
  CreateImageCommand,
  CreateTagsCommand,
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  EnableImageDeprecationCommand,
  type Image,
  ModifyImageAttributeCommand,
  type TagSpecification,
} from "@aws-sdk/client-ec2";
import { KilnError, type Artifact, type BakeContext, type CaptureTarget } from "@kiln/core";
import { type Ec2Api, isNotFound } from "./api.js";
import { stopInstance } from "./instance.js";
import type { Ec2Machine } from "./machine.js";
import type { Ec2Options } from "./options.js";
import { COPIES_TAG, tagSpecs } from "./tags.js";
import { pollingOf, waitFor } from "./wait.js";

/** An AMI in a region. */
interface Ami {
  region: string;
  imageId: string;
}

interface AmiMeta {
  description: string;
  tags: TagSpecification[];
}

/**
 * Stops the instance, creates the AMI (provenance as tags on the AMI and its snapshots), replaces it with an encrypted copy
 * for encrypt_boot, copies it to ami_regions, grants launch permissions and sets the deprecation time. Every AMI is deleted
 * again (with its snapshots) if anything later in the bake fails; the cleanup is registered before each create call.
 */
export async function captureAmi(
  api: Ec2Api,
  ctx: BakeContext,
  machine: Ec2Machine,
  target: CaptureTarget,
  opts: Ec2Options,
): Promise<Artifact> {
  const name = machine.amiName;
  const instanceId = machine.instance.instanceId;
  const stopped = opts.stop_before_capture !== false;
  if (stopped) {
    await machine.disconnect();
    await stopInstance(api, ctx, opts, instanceId);
  }
  if (opts.force_deregister) {
    for (const region of allRegions(opts)) await deregisterNamed(api, ctx, region, name, opts.force_delete_snapshot ?? false);
  }
  const imageTags = { ...opts.ami_tags, ...target.labels };
  // What every AMI of this bake (the first, the encrypted copy, the region copies) is described and tagged with.
  const meta: AmiMeta = {
    description: opts.ami_description ?? `Kiln bake of ${ctx.image} (run ${ctx.runId})`,
    tags: tagSpecs(["image", imageTags], ["snapshot", { ...opts.snapshot_tags, ...target.labels }]),
  };
  // encrypt_boot: the unencrypted AMI only lives until its encrypted copy exists, under a name that frees the final one.
  const firstName = opts.encrypt_boot ? `${name.slice(0, 100)}-unencrypted-${randomBytes(3).toString("hex")}` : name;
  // A stopped instance's AMI no longer needs it once the AMI's snapshots have started (point-in-time copies of the volumes,
  // which complete on their own): the instance is terminated and its key pair and group deleted while the AMI becomes
  // available, so the verify instance starts with the build's gone. The deferred cleanups still run, and wait for this.
  // A running instance (stop_before_capture: false) stays until the AMI is available, as EC2 reboots it for the snapshot.
  // Not with --on-error=abort: a capture that fails after this point must still find the build machine there to keep.
  const releaseBuild =
    stopped && !ctx.keepsMachineOnFailure
      ? () => {
          ctx.log.info(`the AMI's snapshot has started: terminating ${instanceId} meanwhile`);
          machine.release(ctx.signal).catch((error: unknown) => {
            ctx.log.debug(`early removal of ${instanceId} failed, the cleanup tries again: ${(error as Error).message}`);
          });
        }
      : undefined;
  const where = { region: api.region, name: firstName, action: "CreateImage" } as const;
  let primary = await created(
    api,
    ctx,
    opts,
    where,
    (client, http) =>
      client.send(
        new CreateImageCommand({ InstanceId: instanceId, Name: firstName, Description: meta.description, TagSpecifications: meta.tags }),
        http,
      ),
    releaseBuild,
  );
  if (opts.encrypt_boot) {
    const unencrypted = primary;
    primary = await copy(api, ctx, opts, meta, unencrypted, { region: api.region, name, kmsKeyId: opts.kms_key_id });
    await removeAmi(api, unencrypted, true);
  }
  const copies = await Promise.all(
    allRegions(opts)
      .filter((region) => region !== api.region)
      .map((region) => copy(api, ctx, opts, meta, primary, { region, name, kmsKeyId: opts.region_kms_key_ids?.[region] })),
  );
  const amis = [primary, ...copies];
  await Promise.all(amis.map((ami) => grantLaunch(api, ctx, opts, ami)));
  if (opts.deprecate_at) await Promise.all(amis.map((ami) => deprecate(api, ctx, ami, opts.deprecate_at as string)));
  const labels = { ...imageTags };
  if (copies.length > 0) {
    labels[COPIES_TAG] = copies.map((ami) => `${ami.region}=${ami.imageId}`).join(",");
    await api.call(
      "CreateTags",
      (client, http) =>
        client.send(new CreateTagsCommand({ Resources: [primary.imageId], Tags: [{ Key: COPIES_TAG, Value: labels[COPIES_TAG] }] }), http),
      {
        signal: ctx.signal,
        code: "E_CAPTURE",
      },
    );
  }
  return { id: primary.imageId, driver: "ec2", image: ctx.image, tags: [], labels, created: new Date().toISOString() };
}

function allRegions(opts: Ec2Options): string[] {
  return [...new Set([opts.region, ...(opts.ami_regions ?? [])])];
}

/**
 * Runs a call that creates an AMI, with its removal registered first (found by name if the answer never came), then waits
 * until the AMI is available, calling `onSnapshotsStarted` (once) as soon as the AMI names a snapshot for each of its volumes.
 */
async function created(
  api: Ec2Api,
  ctx: BakeContext,
  opts: Ec2Options,
  where: { region: string; name: string; action: "CreateImage" | "CopyImage" },
  create: Parameters<Ec2Api["call"]>[1],
  onSnapshotsStarted?: () => void,
): Promise<Ami> {
  let imageId: string | undefined;
  const action = where.action;
  const removal: AmiRemoval = {};
  ctx.defer(
    async (signal) => {
      const cleanupApi = api.withSignal(signal);
      const id = imageId ?? (await findOwnByName(cleanupApi, where.region, where.name))?.ImageId;
      if (id) await removeAmi(cleanupApi, { region: where.region, imageId: id }, true, undefined, removal);
    },
    {
      when: "failure",
      resource: `AMI ${where.name} in ${where.region}`,
      manualCommand: () => {
        const deregister = `aws ec2 deregister-image --region ${where.region} --image-id ${imageId ?? `<id of AMI ${where.name}>`}`;
        const snapshots = removal.snapshots?.map((id) => `aws ec2 delete-snapshot --region ${where.region} --snapshot-id ${id}`);
        return snapshots ? [deregister, ...snapshots].join("; ") : `${deregister} (and delete its snapshots)`;
      },
    },
  );
  const answer = (await api.call(action, create, { region: where.region, signal: ctx.signal, code: "E_CAPTURE" })) as { ImageId?: string };
  imageId = answer.ImageId;
  if (!imageId) throw new KilnError("E_CAPTURE", `EC2 ${action} answered without an image id`);
  const id = imageId;
  ctx.log.info(`AMI ${id} (${where.name}) is being created in ${where.region}`);
  await waitFor({
    what: `AMI ${id} in ${where.region} to be available`,
    check: async () => {
      const image = await describeImage(api, where.region, id, ctx.signal);
      if (onSnapshotsStarted && snapshotsStarted(image)) {
        onSnapshotsStarted();
        onSnapshotsStarted = undefined;
      }
      return image;
    },
    done: (image) =>
      image?.State === "available"
        ? true
        : image?.State === "failed" || image?.State === "error"
          ? `it ${image.State}: ${image.StateReason?.Message ?? "no reason given"}`
          : false,
    polling: pollingOf(opts),
    signal: ctx.signal,
    log: ctx.log,
    code: "E_CAPTURE",
  });
  return { region: where.region, imageId: id };
}

/** Every EBS volume of the AMI has its snapshot (pending or completed): the instance is no longer read. */
function snapshotsStarted(image: Image | undefined): boolean {
  const volumes = (image?.BlockDeviceMappings ?? []).filter((mapping) => mapping.Ebs);
  return volumes.length > 0 && volumes.every((mapping) => mapping.Ebs?.SnapshotId);
}

function copy(
  api: Ec2Api,
  ctx: BakeContext,
  opts: Ec2Options,
  meta: AmiMeta,
  source: Ami,
  to: { region: string; name: string; kmsKeyId: string | undefined },
): Promise<Ami> {
  const { region, name, kmsKeyId } = to;
  const encrypted = opts.encrypt_boot === true || kmsKeyId !== undefined;
  return created(api, ctx, opts, { region, name, action: "CopyImage" }, (client, http) =>
    client.send(
      new CopyImageCommand({
        SourceImageId: source.imageId,
        SourceRegion: source.region,
        Name: name,
        Description: meta.description,
        ...(encrypted ? { Encrypted: true, ...(kmsKeyId ? { KmsKeyId: kmsKeyId } : {}) } : {}),
        TagSpecifications: meta.tags,
      }),
      http,
    ),
  );
}

async function grantLaunch(api: Ec2Api, ctx: BakeContext, opts: Ec2Options, ami: Ami): Promise<void> {
  const add = [
    ...(opts.ami_users ?? []).map((UserId) => ({ UserId })),
    ...(opts.ami_groups ?? []).map((Group) => ({ Group })),
    ...(opts.ami_org_arns ?? []).map((OrganizationArn) => ({ OrganizationArn })),
    ...(opts.ami_ou_arns ?? []).map((OrganizationalUnitArn) => ({ OrganizationalUnitArn })),
  ];
  if (add.length === 0) return;
  await api.call(
    "ModifyImageAttribute",
    (client, http) => client.send(new ModifyImageAttributeCommand({ ImageId: ami.imageId, LaunchPermission: { Add: add } }), http),
    {
      region: ami.region,
      signal: ctx.signal,
      code: "E_CAPTURE",
    },
  );
}

async function deprecate(api: Ec2Api, ctx: BakeContext, ami: Ami, at: string): Promise<void> {
  await api.call(
    "EnableImageDeprecation",
    (client, http) => client.send(new EnableImageDeprecationCommand({ ImageId: ami.imageId, DeprecateAt: new Date(at) }), http),
    {
      region: ami.region,
      signal: ctx.signal,
      code: "E_CAPTURE",
    },
  );
}

/** One AMI. A new AMI may not be visible at once (eventual consistency): NotFound is retried, unless `missingOk`. */
async function describeImage(
  api: Ec2Api,
  region: string,
  imageId: string,
  signal?: AbortSignal,
  missingOk = false,
): Promise<Image | undefined> {
  try {
    const result = await api.call(
      "DescribeImages",
      (client, http) => client.send(new DescribeImagesCommand({ ImageIds: [imageId] }), http),
      {
        region,
        signal,
        code: "E_CAPTURE",
        notYet: missingOk ? [] : ["InvalidAMIID.NotFound"],
      },
    );
    return result.Images?.[0];
  } catch (error) {
    if (missingOk && isNotFound((error as Error).cause)) return undefined;
    throw error;
  }
}

async function findOwnByName(api: Ec2Api, region: string, name: string): Promise<Image | undefined> {
  const result = await api.call(
    "DescribeImages",
    (client) => client.send(new DescribeImagesCommand({ Owners: ["self"], Filters: [{ Name: "name", Values: [name] }] })),
    { region, code: "E_CAPTURE" },
  );
  return result.Images?.[0];
}

/** Fails before anything is launched when an own AMI already has the name, unless force_deregister will replace it. */
export async function checkAmiName(api: Ec2Api, ctx: BakeContext, opts: Ec2Options, name: string): Promise<void> {
  if (opts.force_deregister) return;
  for (const region of allRegions(opts)) {
    const existing = await findOwnByName(api, region, name);
    if (existing) {
      throw new KilnError("E_CAPTURE", `AMI name "${name}" is already used by ${existing.ImageId} in ${region}`, {
        hint: "put {timestamp} or {date} in ami_name, or set force_deregister: true (and force_delete_snapshot: true) to replace it",
      });
    }
  }
  ctx.log.debug(`AMI name "${name}" is free`);
}

async function deregisterNamed(api: Ec2Api, ctx: BakeContext, region: string, name: string, deleteSnapshots: boolean): Promise<void> {
  const existing = await findOwnByName(api, region, name);
  if (!existing?.ImageId) return;
  ctx.log.info(
    `force_deregister: deregistering ${existing.ImageId} (${name}) in ${region}${deleteSnapshots ? " and deleting its snapshots" : ""}`,
  );
  await removeAmi(api, { region, imageId: existing.ImageId }, deleteSnapshots, existing);
}

/** What a removal learnt before it deregistered the AMI, kept across attempts: a deregistered AMI no longer names its snapshots. */
export interface AmiRemoval {
  snapshots?: string[];
}

/**
 * Deregisters an AMI and (optionally) deletes its snapshots; one already gone is fine. Pass the same `removal` to a retry,
 * so snapshots left by a failed attempt are still deleted; a snapshot that cannot be deleted fails with the command to delete
 * it by hand.
 */
export async function removeAmi(api: Ec2Api, ami: Ami, deleteSnapshots: boolean, known?: Image, removal: AmiRemoval = {}): Promise<void> {
  const image = known ?? (await describeImage(api, ami.region, ami.imageId, undefined, true));
  if (image) {
    removal.snapshots ??= (image.BlockDeviceMappings ?? []).flatMap((mapping) => (mapping.Ebs?.SnapshotId ? [mapping.Ebs.SnapshotId] : []));
    await api
      .call("DeregisterImage", (client) => client.send(new DeregisterImageCommand({ ImageId: ami.imageId })), {
        region: ami.region,
        code: "E_CLEANUP",
      })
      .catch((error) => (isNotFound((error as Error).cause) ? undefined : Promise.reject(error)));
  }
  if (!deleteSnapshots) return;
  for (const snapshotId of removal.snapshots ?? []) {
    await api
      // A just-deregistered AMI may still hold its snapshot for a moment.
      .call("DeleteSnapshot", (client) => client.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId })), {
        region: ami.region,
        code: "E_CLEANUP",
        notYet: ["InvalidSnapshot.InUse"],
      })
      .catch((error) => (isNotFound((error as Error).cause) ? undefined : Promise.reject(snapshotLeft(ami, snapshotId, error))));
  }
}

function snapshotLeft(ami: Ami, snapshotId: string, cause: unknown): KilnError {
  return new KilnError(
    "E_CLEANUP",
    `AMI ${ami.imageId} is deregistered, but its snapshot ${snapshotId} was not deleted: ${(cause as Error).message}`,
    {
      hint: `delete it: aws ec2 delete-snapshot --region ${ami.region} --snapshot-id ${snapshotId}`,
      cause,
    },
  );
}

import type { Server } from "node:net";
import { delay, type EmulatorContext, inBackground } from "./context.js";
import { holdAddress, launchContainer, portFree } from "./container.js";
import { releaseDockerImage } from "./docker-images.js";
import type { InstanceRecord } from "./state.js";

/** Loopback addresses handed to instances: 127.0.0.2 … 127.0.0.254 (the whole of 127/8 is loopback on Linux). */
const FIRST_HOST = 2;
const LAST_HOST = 254;

/** Listeners keeping stopped instances' addresses (see holdAddress); kept off the records, which hold only data. */
const heldAddresses = new WeakMap<InstanceRecord, Server>();

/**
 * Boots an instance's container in the background: pending → running once it started and the `boot` delay passed. An image
 * built on first use (the cloud-init AMI's) is built first, while the instance is pending.
 */
export function bootInstance(ctx: EmulatorContext, instance: InstanceRecord, image: string, publicKey: string | undefined): void {
  inBackground(ctx, async () => {
    try {
      await ctx.lazyImages.get(image)?.();
      if (instance.state !== "pending") return;
      await startContainer(ctx, instance, image, publicKey);
      await delay(ctx.transitionDelays.boot);
      if (instance.state === "pending") instance.state = "running";
    } catch (error) {
      // As on EC2, a launch that fails after RunInstances answered shows up as an instance that went straight to terminated.
      instance.stateReason = `Server.InternalError: ${errorText(error)}`;
      await removeContainer(ctx, instance);
      instance.state = "terminated";
      await releaseDockerImage(ctx, instance.dockerImage);
    }
  });
}

async function startContainer(ctx: EmulatorContext, instance: InstanceRecord, image: string, publicKey: string | undefined): Promise<void> {
  const tried = new Set<string>();
  for (;;) {
    const ipAddress = await freeAddress(ctx, tried);
    tried.add(ipAddress);
    try {
      const container = await launchContainer(ctx.docker, {
        image,
        runId: ctx.runId,
        instanceId: instance.instanceId,
        ipAddress,
        publicKey,
        userData: instance.userData,
        rawUserData: instance.rawUserData,
        ports: openPorts(ctx, instance),
      });
      instance.containerId = container.id;
      instance.ipAddress = ipAddress;
    } catch (error) {
      // Another emulator (a parallel test file) may take the same address between our probe and the engine's bind: try the next.
      if (/address already in use|port is already allocated/i.test(String(error))) continue;
      throw error;
    }
    // Terminated while the container was starting: the termination found no container to remove, so remove it here.
    if (instance.state !== "pending") await removeContainer(ctx, instance);
    return;
  }
}

/** Widest port range of one rule that is published (Docker binds each port on its own). */
const MAX_PUBLISHED_RANGE = 64;

/**
 * The TCP ports the instance's security groups open, as they are at launch: published on its address, so what a group opens
 * is reachable from the host and nothing else is (besides 22, always published). Source CIDRs are not checked.
 */
function openPorts(ctx: EmulatorContext, instance: InstanceRecord): number[] {
  const ports = new Set<number>();
  for (const groupId of instance.groupIds) {
    for (const rule of ctx.state.securityGroups.get(groupId)?.ingress ?? []) {
      if (!["tcp", "6"].includes(rule.ipProtocol) || rule.fromPort === undefined || rule.toPort === undefined) continue;
      if (rule.toPort - rule.fromPort >= MAX_PUBLISHED_RANGE) continue;
      for (let port = rule.fromPort; port <= rule.toPort; port++) ports.add(port);
    }
  }
  return [...ports];
}

async function freeAddress(ctx: EmulatorContext, tried: Set<string>): Promise<string> {
  const taken = new Set<string>();
  for (const other of ctx.state.instances.values()) if (other.ipAddress && other.state !== "terminated") taken.add(other.ipAddress);
  for (let host = FIRST_HOST; host <= LAST_HOST; host++) {
    const address = `127.0.0.${host}`;
    if (taken.has(address) || tried.has(address)) continue;
    if (await portFree(address)) return address;
  }
  throw new Error("no free loopback address 127.0.0.2-254 with port 22 unused");
}

/**
 * running → stopping now; the container is killed (an emulated hard stop: nothing in it needs a clean shutdown) but kept, with
 * its disk, for CreateImage and StartInstances; stopped after the `stop` delay. The instance keeps its address.
 */
export function stopInstance(ctx: EmulatorContext, instance: InstanceRecord): void {
  if (instance.state !== "running") return;
  instance.state = "stopping";
  instance.stateReason = "Client.UserInitiatedShutdown: User initiated shutdown";
  const containerId = instance.containerId;
  inBackground(ctx, async () => {
    if (containerId)
      await ctx.docker
        .getContainer(containerId)
        .kill()
        .catch(() => {});
    if (instance.ipAddress) await keepAddress(instance, instance.ipAddress);
    await delay(ctx.transitionDelays.stop);
    if (instance.state === "stopping") instance.state = "stopped";
  });
}

/**
 * stopped → pending now; the same container starts again (the boot script skips per-instance work: host keys and user data stay
 * as they were), then running after the `boot` delay. A start that fails leaves the instance stopped, with the reason, as on EC2.
 */
export function startInstance(ctx: EmulatorContext, instance: InstanceRecord): void {
  if (instance.state !== "stopped") return;
  instance.state = "pending";
  instance.stateReason = undefined;
  const containerId = instance.containerId;
  inBackground(ctx, async () => {
    try {
      if (!containerId) throw new Error("the instance has no container");
      await releaseAddress(instance);
      await ctx.docker.getContainer(containerId).start();
      await delay(ctx.transitionDelays.boot);
      if (instance.state === "pending") instance.state = "running";
    } catch (error) {
      if (instance.state !== "pending") return;
      instance.state = "stopped";
      instance.stateReason = `Server.InternalError: ${errorText(error)}`;
      if (instance.ipAddress) await keepAddress(instance, instance.ipAddress);
    }
  });
}

/** shutting-down now (from any state but terminated); the container is removed in the background, terminated after the `terminate` delay. */
export function terminateInstance(ctx: EmulatorContext, instance: InstanceRecord): void {
  if (instance.state === "terminated" || instance.state === "shutting-down") return;
  instance.state = "shutting-down";
  instance.stateReason = "Client.UserInitiatedShutdown: User initiated shutdown";
  void releaseAddress(instance);
  inBackground(ctx, async () => {
    await removeContainer(ctx, instance);
    await delay(ctx.transitionDelays.terminate);
    instance.state = "terminated";
    await releaseDockerImage(ctx, instance.dockerImage);
  });
}

/** Holds a stopped instance's address, unless it was started or terminated while the hold was being set up. */
async function keepAddress(instance: InstanceRecord, address: string): Promise<void> {
  const server = await holdAddress(address);
  if (!server) return;
  if (instance.state === "stopping" || instance.state === "stopped") heldAddresses.set(instance, server);
  else server.close();
}

/** Resolves once the port is free again, so the container can bind it. */
function releaseAddress(instance: InstanceRecord): Promise<void> {
  const server = heldAddresses.get(instance);
  heldAddresses.delete(instance);
  return new Promise((resolve) => (server ? server.close(() => resolve()) : resolve()));
}

async function removeContainer(ctx: EmulatorContext, instance: InstanceRecord): Promise<void> {
  if (!instance.containerId) return;
  const id = instance.containerId;
  instance.containerId = undefined;
  await ctx.docker
    .getContainer(id)
    .remove({ force: true, v: true })
    .catch(() => {});
}

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error));

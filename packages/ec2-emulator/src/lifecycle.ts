import { delay, type EmulatorContext, inBackground } from "./context.js";
import { launchContainer, portFree } from "./container.js";
import { releaseDockerImage } from "./docker-images.js";
import type { InstanceRecord } from "./state.js";

/** Loopback addresses handed to instances: 127.0.0.2 … 127.0.0.254 (the whole of 127/8 is loopback on Linux). */
const FIRST_HOST = 2;
const LAST_HOST = 254;

/** Boots an instance's container in the background: pending → running once it started and `transitionDelayMs` passed. */
export function bootInstance(ctx: EmulatorContext, instance: InstanceRecord, image: string, publicKey: string | undefined): void {
  inBackground(ctx, async () => {
    try {
      await startContainer(ctx, instance, image, publicKey);
      await delay(ctx.transitionDelayMs);
      if (instance.state === "pending") instance.state = "running";
    } catch (error) {
      // As on EC2, a launch that fails after RunInstances answered shows up as an instance that went straight to terminated.
      instance.stateReason = `Server.InternalError: ${error instanceof Error ? error.message : String(error)}`;
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
      const container = await launchContainer(ctx.docker, { image, runId: ctx.runId, instanceId: instance.instanceId, ipAddress, publicKey, userData: instance.userData });
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

/** shutting-down now; the container is removed in the background, then terminated after `transitionDelayMs`. */
export function terminateInstance(ctx: EmulatorContext, instance: InstanceRecord): void {
  if (instance.state === "terminated" || instance.state === "shutting-down") return;
  instance.state = "shutting-down";
  instance.stateReason = "Client.UserInitiatedShutdown: User initiated shutdown";
  inBackground(ctx, async () => {
    await removeContainer(ctx, instance);
    await delay(ctx.transitionDelayMs);
    instance.state = "terminated";
    await releaseDockerImage(ctx, instance.dockerImage);
  });
}

async function removeContainer(ctx: EmulatorContext, instance: InstanceRecord): Promise<void> {
  if (!instance.containerId) return;
  const id = instance.containerId;
  instance.containerId = undefined;
  await ctx.docker.getContainer(id).remove({ force: true, v: true }).catch(() => {});
}

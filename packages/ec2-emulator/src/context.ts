import type Docker from "dockerode";
import type { Ec2State } from "./state.js";

/** What every action handler works with. */
export interface EmulatorContext {
  state: Ec2State;
  docker: Docker;
  /** Value of `dev.kiln.build` on every container this emulator starts. */
  runId: string;
  /** Delay of each asynchronous state transition, in ms. */
  transitionDelays: Record<Transition, number>;
  /** How long a new instance stays invisible to DescribeInstances by id, in ms. */
  eventualConsistencyMs: number;
  /** Background work (boots, terminations) that stop() must wait for. */
  background: Set<Promise<unknown>>;
  /** Tags of the Docker images CreateImage committed, which stop() removes (the base image is never among them). */
  committedImages: Set<string>;
  /**
   * Docker images built on first use, by reference: a boot from one of them awaits its build first (the instance stays pending
   * meanwhile). The seeded cloud-init AMI's image is one, so emulators that never launch it never build it.
   */
  lazyImages: Map<string, () => Promise<unknown>>;
}

/**
 * The asynchronous transitions: `boot` pending → running (after the container started, also after StartInstances), `stop`
 * stopping → stopped, `terminate` shutting-down → terminated, `image` an AMI's pending → available (after the commit).
 */
export type Transition = "boot" | "stop" | "terminate" | "image";

/** One request's view of the emulator: the shared context plus the region the request was signed for. */
export interface RequestContext extends EmulatorContext {
  /** From the SigV4 credential scope (default us-east-1). Images and snapshots belong to a region; the rest is global. */
  region: string;
}

/** Runs work in the background, keeping hold of it until it settles so stop() can wait for it. */
export function inBackground(ctx: EmulatorContext, work: () => Promise<void>): void {
  const promise = work().catch(() => {});
  ctx.background.add(promise);
  void promise.finally(() => ctx.background.delete(promise));
}

export const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

import { rm } from "node:fs/promises";
import { LABELS } from "@kiln/core";
import { bakeWith, testPluginInit } from "@kiln/test-suite";
import { afterEach, describe, expect, it } from "vitest";
import ec2 from "../src/index.js";
import { fileEmulator } from "./emulator.js";

// Stale reads for a second after each launch: DescribeInstances by id answers NotFound, as EC2 may right after RunInstances.
const emulator = fileEmulator({ eventualConsistencyMs: 1000 });

/** A bake that reaches every EC2 action the driver has: copies, permissions, deprecation and a verify instance. */
async function bake(extra: Record<string, unknown> = {}, onEvent?: Parameters<typeof bakeWith>[0]["onEvent"]) {
  const options = await emulator.options({
    ami_regions: ["us-west-2"],
    ami_users: ["111122223333"],
    deprecate_at: new Date(Date.now() + 86_400_000).toISOString(),
    ...extra,
  });
  return bakeWith({
    driver: ec2,
    options,
    commands: ["echo baked > /etc/kiln-baked"],
    verify: { checks: [{ file: { path: "/etc/kiln-baked", contains: "baked" } }] },
    ...(onEvent ? { onEvent } : {}),
  });
}

// A fault a test injected but its bake never reached must not fail the next test.
afterEach(async () => (await emulator.current()).clearFaults());

const errorOf = (result: Awaited<ReturnType<typeof bake>>) => result.records[0]?.error;

describe("EC2 failures leave nothing behind", () => {
  // Every action a bake calls, in the order it first calls it; each fails once with an error that is not retried.
  const actions = [
    "DescribeImages",
    "CreateKeyPair",
    "CreateSecurityGroup",
    "AuthorizeSecurityGroupIngress",
    "RunInstances",
    "DescribeInstances",
    "StopInstances",
    "CreateImage",
    "CopyImage",
    "ModifyImageAttribute",
    "EnableImageDeprecation",
    "CreateTags",
  ];
  it.each(actions)("%s refused: the bake fails saying which call and why, and every resource is gone", async (action) => {
    (await emulator.current()).injectFault(action, {
      code: "UnauthorizedOperation",
      message: `You are not authorized to perform ${action}`,
      status: 403,
    });
    const result = await bake();
    expect(result.ok).toBe(false);
    expect(errorOf(result)?.message).toContain(`EC2 ${action} failed`);
    expect(errorOf(result)?.message).toContain("UnauthorizedOperation");
    expect(errorOf(result)?.hint).toMatch(/IAM permission/);
    expect(result.events.filter((event) => event.type === "cleanup.failed")).toEqual([]);
    expect(await emulator.leftovers(result.runId)).toEqual([]);
  });

  it("with --on-error=abort, a capture that fails after the snapshot started still keeps the build instance to inspect", async () => {
    // CopyImage comes after the AMI's snapshot started, when a normal bake terminates the build instance early.
    (await emulator.current()).injectFault("CopyImage", { code: "UnauthorizedOperation", message: "not authorized", status: 403 });
    const result = await bakeWith({
      driver: ec2,
      options: await emulator.options({ ami_regions: ["us-west-2"] }),
      commands: ["true"],
      run: { onError: "abort" },
    });
    expect(result.ok).toBe(false);
    const kept = result.events.find((event) => event.type === "abort.kept");
    expect(kept?.type === "abort.kept" && kept.machine).toMatch(/^i-/);
    const instances = (await emulator.current()).resources().instances;
    const instance = instances.find((item) => kept?.type === "abort.kept" && item.instanceId === kept.machine);
    expect(instance?.state).toBe("stopped");
    // The instance, key pair and group it kept go with the emulator after this file; the SSH key files on this host go now.
    for (const item of kept?.type === "abort.kept" ? kept.kept : []) {
      const dir = /^key files in (.+)$/.exec(item.resource)?.[1];
      if (dir) await rm(dir, { recursive: true, force: true });
    }
  });

  it.each(["TerminateInstances", "DeleteSecurityGroup", "DeleteKeyPair", "DeregisterImage", "DeleteSnapshot"])(
    "a transient 5xx from cleanup's %s is retried: nothing is left",
    async (action) => {
      const current = await emulator.current();
      // The verify check fails, so the AMIs are removed too (DeregisterImage, DeleteSnapshot are on the path).
      current.injectFault(action, { code: "InternalError", message: "We encountered an internal error", status: 500 });
      const result = await bakeWith({
        driver: ec2,
        options: await emulator.options(),
        commands: ["true"],
        verify: { checks: [{ command: "test -e /nowhere" }] },
      });
      expect(result.ok).toBe(false);
      expect(errorOf(result)?.message).toMatch(/verify/);
      expect(result.events.filter((event) => event.type === "cleanup.failed")).toEqual([]);
      expect(await emulator.leftovers(result.runId)).toEqual([]);
    },
  );

  // Every delete and terminate a failed bake calls, refused for good (a missing IAM permission): the bake must still end, within
  // the cleanup timeout, saying what is left and how to remove it. DeregisterImage and DeleteSnapshot run when verify fails.
  it.each(["TerminateInstances", "DeleteSecurityGroup", "DeleteKeyPair", "DeregisterImage", "DeleteSnapshot"])(
    "%s refused for good: the bake ends, naming what is left and the command that removes it",
    async (action) => {
      const current = await emulator.current();
      for (let nth = 1; nth <= 200; nth++)
        current.injectFault(action, { code: "UnauthorizedOperation", message: `not authorized to ${action}`, status: 403, nth });
      const result = await bakeWith({
        driver: ec2,
        options: await emulator.options(),
        // A bake of its own (another key): an AMI a refused DeregisterImage left must not be taken for this one's.
        commands: [`echo ${action}`],
        verify: { checks: [{ command: "test -e /nowhere" }] },
        run: { cleanupTimeoutMs: 5_000 },
      });
      current.clearFaults();
      expect(result.ok).toBe(false);
      expect(errorOf(result)?.message).toMatch(/verify/);
      const failed = result.events.flatMap((event) => (event.type === "cleanup.failed" ? [event] : []));
      // The driver's own cleanups say how to remove their resource; Kiln's "build machine" entries repeat the instance.
      const ownCleanups = failed.filter((failure) => !/^(build|verify) machine /.test(failure.resource));
      expect(ownCleanups.length).toBeGreaterThan(0);
      for (const failure of ownCleanups) expect(failure.manualCommand ?? "", failure.resource).toMatch(/^aws ec2 /);
      // What is left is exactly what the report names: an instance by its id, a group or key pair by name, an AMI by id.
      const left = await emulator.leftovers(result.runId);
      expect(left.length).toBeGreaterThan(0);
      const named = failed.map((failure) => `${failure.resource} ${failure.manualCommand}`).join("\n");
      for (const resource of left.filter((id) => /^(i|ami|snap)-/.test(id))) expect(named).toContain(resource.split(" ")[0]);
    },
  );

  it("SSH that never answers fails the bake within ssh_timeout and removes the instance, group and key pair", async () => {
    const result = await bake({ ssh_port: 2222, ssh_timeout: "3s" });
    expect(errorOf(result)?.message).toMatch(/cannot connect over SSH to admin@127\.0\.0\.\d+:2222 within 3s/);
    expect(await emulator.leftovers(result.runId)).toEqual([]);
  });

  it.each([
    ["while the instance boots", /^waiting for instance i-\S+ to be running/],
    ["while the AMI is created", /^waiting for AMI ami-\S+ in us-east-1 to be available/],
    // The build instance, its key pair and group are being removed by capture itself while the AMI becomes available.
    ["while the build instance is terminated early", /^the AMI's snapshot has started: terminating i-\S+ meanwhile/],
    ["while the AMI is copied", /^waiting for AMI ami-\S+ in us-west-2 to be available/],
  ])("Ctrl-C %s: interrupted, and every resource is gone", async (_when, line) => {
    const result = await bake({}, (event, _run, abort) => {
      if (event.type === "log" && line.test(event.message)) abort();
    });
    expect(result.interrupted).toBe(true);
    expect(errorOf(result)?.code).toBe("E_INTERRUPTED");
    expect(await emulator.leftovers(result.runId)).toEqual([]);
  });
});

describe("EC2 retries", () => {
  it("throttling, transient 5xx and stale reads are retried with backoff, and the bake succeeds", async () => {
    const current = await emulator.current();
    current.throttle("DescribeImages", 3);
    current.throttle("CreateImage", 2);
    current.injectFault("RunInstances", { code: "InternalError", status: 500 });
    const before = current.callCounts();
    const result = await bakeWith({ driver: ec2, options: await emulator.options(), commands: ["true"] });
    const artifact = result.records[0]?.artifact;
    try {
      expect(result.ok, JSON.stringify(errorOf(result))).toBe(true);
      const retries = result.events.flatMap((event) => (event.type === "log" && /retrying in/.test(event.message) ? [event.message] : []));
      expect(retries.some((line) => line.startsWith("EC2 DescribeImages: RequestLimitExceeded"))).toBe(true);
      expect(retries.some((line) => line.startsWith("EC2 DescribeInstances: InvalidInstanceID.NotFound"))).toBe(true);
      expect(retries.some((line) => line.startsWith("EC2 CreateImage: RequestLimitExceeded"))).toBe(true);
      expect(retries.some((line) => line.startsWith("EC2 RunInstances: InternalError"))).toBe(true);
      // The retried RunInstances carried the same client token: one instance, not two.
      const after = current.callCounts();
      expect((after.RunInstances ?? 0) - (before.RunInstances ?? 0)).toBe(2);
      expect(artifact?.labels[LABELS.build]).toBe(result.runId);
    } finally {
      if (artifact) await ec2(testPluginInit("driver", "ec2")).remove(artifact, (await emulator.options()) as never);
    }
    expect(await emulator.leftovers(result.runId)).toEqual([]);
  });

  it("gives up after api_retry_deadline when EC2 keeps throttling, with a clear error", async () => {
    (await emulator.current()).throttle("CreateKeyPair", 1000);
    const result = await bake({ api_retry_deadline: "2s" });
    expect(errorOf(result)?.message).toMatch(/EC2 CreateKeyPair failed .*RequestLimitExceeded/);
    expect(await emulator.leftovers(result.runId)).toEqual([]);
  });
});

import { describe, expect, it } from "vitest";
import { CleanupStack } from "./cleanup.js";

describe("CleanupStack.unwind", () => {
  it("runs cleanups in reverse order of registration", async () => {
    const ran: string[] = [];
    const stack = new CleanupStack();
    stack.defer(() => void ran.push("network"));
    stack.defer(() => void ran.push("volume"));
    stack.defer(async () => void ran.push("container"));
    await stack.unwind("success");
    expect(ran).toEqual(["container", "volume", "network"]);
  });

  it("skips `when: failure` cleanups when the bake succeeded", async () => {
    const ran: string[] = [];
    const stack = new CleanupStack();
    stack.defer(() => void ran.push("build machine"));
    stack.defer(() => void ran.push("half-made artefact"), { when: "failure" });
    await stack.unwind("success");
    expect(ran).toEqual(["build machine"]);
  });

  it("runs `when: failure` cleanups when the bake failed", async () => {
    const ran: string[] = [];
    const stack = new CleanupStack();
    stack.defer(() => void ran.push("build machine"));
    stack.defer(() => void ran.push("half-made artefact"), { when: "failure" });
    await stack.unwind("failure");
    expect(ran).toEqual(["half-made artefact", "build machine"]);
  });

  it("retries a cleanup that fails, and reports nothing once it succeeds", async () => {
    let attempts = 0;
    const stack = new CleanupStack({ retries: 2 });
    stack.defer(() => {
      attempts += 1;
      if (attempts === 1) throw new Error("container is restarting");
    });
    const failures = await stack.unwind("failure");
    expect(attempts).toBe(2);
    expect(failures).toEqual([]);
  });

  it("reports a cleanup that keeps failing with its resource, error and manual command", async () => {
    let attempts = 0;
    const stack = new CleanupStack({ retries: 1 });
    stack.defer(
      () => {
        attempts += 1;
        throw new Error("permission denied");
      },
      { resource: "container 3f2a", manualCommand: "docker rm -f 3f2a" },
    );
    const failures = await stack.unwind("failure");
    expect(attempts).toBe(2);
    expect(failures).toEqual([{ resource: "container 3f2a", error: "permission denied", manualCommand: "docker rm -f 3f2a" }]);
  });

  it("still runs the remaining cleanups after one fails", async () => {
    const ran: string[] = [];
    const stack = new CleanupStack({ retries: 0 });
    stack.defer(() => void ran.push("network"), { resource: "network kiln-net" });
    stack.defer(
      () => {
        throw new Error("permission denied");
      },
      { resource: "container 3f2a" },
    );
    stack.defer(() => void ran.push("volume"), { resource: "volume kiln-vol" });
    const failures = await stack.unwind("failure");
    expect(ran).toEqual(["volume", "network"]);
    expect(failures.map((failure) => failure.resource)).toEqual(["container 3f2a"]);
  });

  it("names a failed cleanup registered without a resource 'unnamed resource'", async () => {
    const stack = new CleanupStack({ retries: 0 });
    stack.defer(() => Promise.reject(new Error("gone wrong")));
    const failures = await stack.unwind("failure");
    expect(failures).toEqual([{ resource: "unnamed resource", error: "gone wrong" }]);
  });

  it("runs each cleanup only once, even when unwound twice", async () => {
    let runs = 0;
    const stack = new CleanupStack();
    stack.defer(() => {
      runs += 1;
    });
    await stack.unwind("success");
    await stack.unwind("failure");
    expect(runs).toBe(1);
  });
});

describe("CleanupStack: late registrations and timeouts", () => {
  it("runs a cleanup registered after unwinding at once (a step that returned after Ctrl-C), and reports it", async () => {
    const ran: string[] = [];
    const stack = new CleanupStack({ retries: 0 });
    await stack.unwind("failure");
    stack.defer(() => void ran.push("container created after the interrupt"));
    stack.defer(() => Promise.reject(new Error("engine refused")), { resource: "container late", manualCommand: "docker rm -f late" });
    expect(await stack.settled()).toEqual([{ resource: "container late", error: "engine refused", manualCommand: "docker rm -f late" }]);
    expect(ran).toEqual(["container created after the interrupt"]);
    expect(await stack.settled()).toEqual([]);
  });

  it("does not run a late `when: failure` cleanup after a successful bake", async () => {
    let ran = false;
    const stack = new CleanupStack();
    await stack.unwind("success");
    stack.defer(
      () => {
        ran = true;
      },
      { when: "failure" },
    );
    await stack.settled();
    expect(ran).toBe(false);
  });

  it("runs a cleanup registered while unwinding, in the same unwind", async () => {
    const ran: string[] = [];
    const stack = new CleanupStack();
    stack.defer(() => {
      ran.push("first");
      stack.defer(() => void ran.push("registered meanwhile"));
    });
    await stack.unwind("failure");
    expect(ran).toEqual(["first", "registered meanwhile"]);
  });

  it("gives up on a cleanup that hangs at its timeout, names the resource and the command, and still runs the rest", async () => {
    const ran: string[] = [];
    let signalled: AbortSignal | undefined;
    const stack = new CleanupStack({ timeoutMs: 60_000, retries: 0 });
    stack.defer(() => void ran.push("key pair"));
    stack.defer(
      (signal) => {
        signalled = signal;
        return new Promise<void>(() => {});
      },
      { resource: "instance i-123", manualCommand: "aws ec2 terminate-instances --instance-ids i-123", timeoutMs: 50 },
    );
    const failures = await stack.unwind("failure");
    expect(failures).toEqual([
      {
        resource: "instance i-123",
        error: "did not finish within 50ms",
        manualCommand: "aws ec2 terminate-instances --instance-ids i-123",
      },
    ]);
    expect(signalled?.aborted).toBe(true);
    expect(ran).toEqual(["key pair"]);
  });

  it("reports the last error of a cleanup that kept failing until its timeout", async () => {
    const stack = new CleanupStack({ timeoutMs: 300, retries: 1000 });
    stack.defer(() => Promise.reject(new Error("UnauthorizedOperation")), { resource: "instance i-9" });
    const [failure] = await stack.unwind("failure");
    expect(failure?.error).toMatch(/^did not finish within 300ms \(last error: UnauthorizedOperation\)$/);
  });
});

describe("CleanupStack.pending", () => {
  it("lists the resources not cleaned up yet, with their manual commands", () => {
    const stack = new CleanupStack();
    stack.defer(() => undefined, { resource: "container 3f2a", manualCommand: "docker rm -f 3f2a" });
    stack.defer(() => undefined);
    expect(stack.pending()).toEqual([{ resource: "container 3f2a", manualCommand: "docker rm -f 3f2a" }, { resource: "unnamed resource" }]);
  });

  it("is empty once the stack has been unwound", async () => {
    const stack = new CleanupStack();
    stack.defer(() => undefined, { resource: "container 3f2a" });
    await stack.unwind("success");
    expect(stack.pending()).toEqual([]);
  });
});

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
    const stack = new CleanupStack();
    stack.defer(() => {
      attempts += 1;
      if (attempts === 1) throw new Error("container is restarting");
    });
    const failures = await stack.unwind("failure", 2);
    expect(attempts).toBe(2);
    expect(failures).toEqual([]);
  });

  it("reports a cleanup that keeps failing with its resource, error and manual command", async () => {
    let attempts = 0;
    const stack = new CleanupStack();
    stack.defer(
      () => {
        attempts += 1;
        throw new Error("permission denied");
      },
      { resource: "container 3f2a", manualCommand: "docker rm -f 3f2a" },
    );
    const failures = await stack.unwind("failure", 1);
    expect(attempts).toBe(2);
    expect(failures).toEqual([{ resource: "container 3f2a", error: "permission denied", manualCommand: "docker rm -f 3f2a" }]);
  });

  it("still runs the remaining cleanups after one fails", async () => {
    const ran: string[] = [];
    const stack = new CleanupStack();
    stack.defer(() => void ran.push("network"), { resource: "network kiln-net" });
    stack.defer(
      () => {
        throw new Error("permission denied");
      },
      { resource: "container 3f2a" },
    );
    stack.defer(() => void ran.push("volume"), { resource: "volume kiln-vol" });
    const failures = await stack.unwind("failure", 0);
    expect(ran).toEqual(["volume", "network"]);
    expect(failures.map((failure) => failure.resource)).toEqual(["container 3f2a"]);
  });

  it("names a failed cleanup registered without a resource 'unnamed resource'", async () => {
    const stack = new CleanupStack();
    stack.defer(() => Promise.reject(new Error("gone wrong")));
    const failures = await stack.unwind("failure", 0);
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

describe("CleanupStack.pending", () => {
  it("lists the resources not cleaned up yet, with their manual commands", () => {
    const stack = new CleanupStack();
    stack.defer(() => undefined, { resource: "container 3f2a", manualCommand: "docker rm -f 3f2a" });
    stack.defer(() => undefined);
    expect(stack.pending()).toEqual([
      { resource: "container 3f2a", manualCommand: "docker rm -f 3f2a" },
      { resource: "unnamed resource" },
    ]);
  });

  it("is empty once the stack has been unwound", async () => {
    const stack = new CleanupStack();
    stack.defer(() => undefined, { resource: "container 3f2a" });
    await stack.unwind("success");
    expect(stack.pending()).toEqual([]);
  });
});

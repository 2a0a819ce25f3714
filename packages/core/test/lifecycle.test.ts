import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { stringify } from "yaml";
import { loadProject, type Project } from "../src/config/load.js";
import { KilnError } from "../src/errors.js";
import type { KilnEvent, StepName } from "../src/events.js";
import { LABELS } from "../src/provenance.js";
import { BuildRun, type BuildOptions, type BuildResult } from "../src/runner.js";
import type { ArtifactQuery } from "../src/types.js";
import { memoryDriver, MemoryWorld, stepProvisioner, type MemoryResource, type MemoryStep } from "./memory-driver.js";

type ImageDefinition = Record<string, unknown>;

/** An image that goes through every step: resolve, launch, provision, capture, verify and tag. */
const WEB: ImageDefinition = {
  driver: "memory",
  source: "debian:bookworm",
  tags: ["acme/web:1"],
  labels: { team: "web" },
  provision: [{ step: { run: "echo provisioned" } }],
  verify: { checks: [{ command: "true" }] },
};

/** The same image with other provision steps: each argument is the options of one `- step:`. */
const webWith = (...steps: Record<string, unknown>[]): ImageDefinition => ({ ...WEB, provision: steps.map((step) => ({ step })) });

/** Writes a kiln.yaml into a fresh directory and loads it with the memory driver and the `step` provisioner. */
async function load(world: MemoryWorld, images: Record<string, ImageDefinition>): Promise<Project> {
  const dir = await mkdtemp(join(tmpdir(), "kiln-lifecycle-"));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, "kiln.yaml");
  await writeFile(file, stringify({ project: "lifecycle", images }));
  const registry = { drivers: { memory: memoryDriver(world) }, provisioners: { step: stepProvisioner } };
  return loadProject(file, { plugins: { registry } });
}

type RunOptions = Omit<BuildOptions, "project" | "kilnVersion" | "onEvent"> & { onEvent?: (event: KilnEvent) => void };

/** Runs `kiln build` on the project with short grace and cleanup deadlines, collecting the events. */
async function bake(project: Project, options: RunOptions = {}): Promise<{ result: BuildResult; events: KilnEvent[] }> {
  const events: KilnEvent[] = [];
  const { onEvent, ...rest } = options;
  const run = new BuildRun({
    graceMs: 2000,
    cleanupTimeoutMs: 2000,
    ...rest,
    project,
    kilnVersion: "0.0.0-test",
    onEvent: (event) => {
      events.push(event);
      onEvent?.(event);
    },
  });
  return { result: await run.run(), events };
}

/** What the CLI does on SIGINT. */
function ctrlC(): { signal: AbortSignal; press: () => void } {
  const controller = new AbortController();
  return { signal: controller.signal, press: () => controller.abort(new KilnError("E_INTERRUPTED", "interrupted by SIGINT")) };
}

function eventsOf<T extends KilnEvent["type"]>(events: KilnEvent[], type: T): Extract<KilnEvent, { type: T }>[] {
  return events.filter((event): event is Extract<KilnEvent, { type: T }> => event.type === type);
}

const startedSteps = (events: KilnEvent[]) => eventsOf(events, "step.start").map((event) => event.step);
const ids = (resources: MemoryResource[]) => resources.map((resource) => resource.id);

function expectInterrupted(result: BuildResult, world: MemoryWorld): void {
  expect(result.interrupted).toBe(true);
  expect(result.ok).toBe(false);
  expect(result.records[0]?.status).toBe("failed");
  expect(result.records[0]?.error?.code).toBe("E_INTERRUPTED");
  expect(result.cleanupFailures).toEqual([]);
  expect(world.live()).toEqual([]);
}

describe("a successful bake", () => {
  it("leaves only the artefact, tagged and labelled with its provenance; build and verify machines are removed", async () => {
    const world = new MemoryWorld();
    const { result, events } = await bake(await load(world, { web: WEB }));

    expect(result.ok).toBe(true);
    expect(result.interrupted).toBe(false);
    const record = result.records[0];
    expect(record?.status).toBe("baked");
    const [artifact] = world.live();
    expect(world.live()).toHaveLength(1);
    expect(artifact).toMatchObject({ kind: "artifact", id: record?.artifact?.id, tags: ["acme/web:1"], run: result.runId });
    expect(Object.keys(artifact?.labels ?? {})).toEqual(expect.arrayContaining(Object.values(LABELS)));
    expect(artifact?.labels).toMatchObject({
      team: "web",
      [LABELS.build]: result.runId,
      [LABELS.key]: record?.bakeKey,
      [LABELS.image]: "web",
      [LABELS.project]: "lifecycle",
      [LABELS.parent]: "",
      [LABELS.source]: "debian:bookworm@source:debian:bookworm",
      [LABELS.version]: "0.0.0-test",
      [LABELS.verify]: "passed",
      // Plugins given through the registry are not packages: they add nothing to the list.
      [LABELS.plugins]: "",
    });
    expect(record?.artifact?.tags).toEqual(["acme/web:1"]);

    // The build machine ran the provision step, a verify machine ran the check; both carried the run's labels.
    const machines = world.created("machine");
    expect(machines.map((machine) => machine.role)).toEqual(["build", "verify"]);
    for (const machine of machines) expect(machine.labels).toEqual({ [LABELS.build]: result.runId, [LABELS.image]: "web" });
    expect(world.execs.map(({ machine, command }) => ({ machine, command }))).toEqual([
      { machine: machines[0]?.id, command: "echo provisioned" },
      { machine: machines[1]?.id, command: "true" },
    ]);
    expect(eventsOf(events, "output").map((event) => event.line)).toEqual(["provisioned"]);
    expect(startedSteps(events)).toEqual(["resolve", "launch", "provision", "capture", "verify", "tag"]);
    expect(eventsOf(events, "image.done")).toEqual([expect.objectContaining({ image: "web", bakeKey: record?.bakeKey })]);
    expect(result.cleanupFailures).toEqual([]);
  });

  it("a parent and its child (from:) are both baked, the child from the parent's artefact", async () => {
    const world = new MemoryWorld();
    const project = await load(world, { base: WEB, app: { driver: "memory", from: "base", provision: [{ step: { run: "echo app" } }] } });
    const { result } = await bake(project);

    expect(result.ok).toBe(true);
    const [base, app] = result.records;
    expect(app?.parent).toBe(base?.artifact?.id);
    expect(app?.source?.id).toBe(base?.artifact?.id);
    expect(app?.artifact?.labels[LABELS.parent]).toBe(base?.artifact?.id);
    expect(ids(world.live())).toEqual([base?.artifact?.id, app?.artifact?.id]);
  });
});

describe("the cache", () => {
  it("a second identical run reports the image as cached and launches nothing", async () => {
    const world = new MemoryWorld();
    const project = await load(world, { web: WEB });
    const first = await bake(project);
    const launches = world.calls.launch;

    const second = await bake(project);

    expect(second.result.ok).toBe(true);
    expect(second.result.records[0]?.status).toBe("cached");
    expect(second.result.records[0]?.artifact?.id).toBe(first.result.records[0]?.artifact?.id);
    expect(second.result.records[0]?.artifact?.tags).toEqual(["acme/web:1"]);
    expect(world.calls.launch).toBe(launches);
    expect(world.calls.launchArtifact).toBe(1);
    expect(eventsOf(second.events, "image.cached")).toHaveLength(1);
    expect(eventsOf(second.events, "image.start")).toEqual([]);
    expect(ids(world.live())).toEqual([first.result.records[0]?.artifact?.id]);
  });

  it("a changed provision step is baked again", async () => {
    const world = new MemoryWorld();
    await bake(await load(world, { web: WEB }));

    const { result } = await bake(await load(world, { web: webWith({ run: "echo changed" }) }));

    expect(result.records[0]?.status).toBe("baked");
    expect(world.calls.launch).toBe(2);
  });

  it("force rebakes an image that is cached, and moves its tag to the new artefact", async () => {
    const world = new MemoryWorld();
    const project = await load(world, { web: WEB });
    const first = await bake(project);

    const forced = await bake(project, { force: true });

    expect(forced.result.records[0]?.status).toBe("baked");
    expect(world.calls.launch).toBe(2);
    const [old, rebaked] = world.live({ kind: "artifact" });
    expect(old?.id).toBe(first.result.records[0]?.artifact?.id);
    expect(rebaked?.id).toBe(forced.result.records[0]?.artifact?.id);
    expect(old?.tags).toEqual([]);
    expect(rebaked?.tags).toEqual(["acme/web:1"]);
  });

  it("force with image names rebakes only those images", async () => {
    const world = new MemoryWorld();
    const project = await load(world, { web: WEB, api: { ...WEB, tags: ["acme/api:1"] } });
    await bake(project);

    const { result } = await bake(project, { force: ["api"] });

    expect(result.records.map((record) => [record.image, record.status])).toEqual([
      ["web", "cached"],
      ["api", "baked"],
    ]);
  });

  it("a cache lookup that hangs is given up on Ctrl-C: the run ends interrupted and launches nothing", async () => {
    const world = new MemoryWorld();
    const interrupt = ctrlC();
    const lookup = world.inject("findArtifacts", "hang");
    onTestFinished(() => lookup.release());
    void lookup.reached.then(interrupt.press);
    const { result, events } = await bake(await load(world, { web: WEB }), { signal: interrupt.signal, graceMs: 200 });

    expect(lookup.hits).toBe(1);
    expectInterrupted(result, world);
    expect(startedSteps(events)).toEqual(["resolve"]);
    expect(world.created()).toEqual([]);
    expect(eventsOf(events, "run.end")).toEqual([expect.objectContaining({ ok: false, interrupted: true })]);
  });

  it("a cache lookup that hangs is given up when the image times out: the run fails with E_TIMEOUT and launches nothing", async () => {
    const world = new MemoryWorld();
    const lookup = world.inject("findArtifacts", "hang");
    onTestFinished(() => lookup.release());
    const { result, events } = await bake(await load(world, { web: { ...WEB, timeout: "300ms" } }), { graceMs: 200 });

    expect(lookup.hits).toBe(1);
    expect(result.ok).toBe(false);
    expect(result.interrupted).toBe(false);
    expect(result.records[0]?.error).toMatchObject({ code: "E_TIMEOUT", message: 'image "web" timed out after 300ms' });
    expect(startedSteps(events)).toEqual(["resolve"]);
    expect(world.created()).toEqual([]);
    expect(result.cleanupFailures).toEqual([]);
  });
});

describe("a failing bake leaves nothing behind", () => {
  it("a provision step that exits non-zero fails the bake with its message; later steps do not run", async () => {
    const world = new MemoryWorld();
    const project = await load(world, {
      web: webWith({ run: "echo starting" }, { run: "exit 3" }, { run: "echo never" }),
    });
    const { result, events } = await bake(project);

    expect(result.ok).toBe(false);
    expect(result.interrupted).toBe(false);
    expect(result.records[0]?.status).toBe("failed");
    expect(result.records[0]?.error).toMatchObject({ code: "E_PROVISION", message: '"exit 3" exited with 3' });
    expect(world.execs.map((exec) => exec.command)).toEqual(["echo starting", "exit 3"]);
    expect(world.calls.capture).toBe(0);
    expect(world.created("machine")).toHaveLength(1);
    expect(world.live()).toEqual([]);
    expect(eventsOf(events, "image.failed")).toEqual([
      expect.objectContaining({ image: "web", error: expect.objectContaining({ code: "E_PROVISION" }) }),
    ]);
  });

  it.each([
    ["resolveSource", "E_SOURCE"],
    ["launch", "E_LAUNCH"],
    ["capture", "E_CAPTURE"],
    ["launchArtifact", "E_LAUNCH"],
    ["tag", "E_CAPTURE"],
  ] as const)("a platform that refuses %s fails the bake with %s", async (call, code) => {
    const world = new MemoryWorld();
    const refused = world.inject(call, "fail");
    const { result } = await bake(await load(world, { web: WEB }));

    expect(refused.hits).toBe(1);
    expect(result.ok).toBe(false);
    expect(result.records[0]?.error).toMatchObject({ code, message: expect.stringContaining(call) });
    expect(result.cleanupFailures).toEqual([]);
    expect(world.live()).toEqual([]);
  });

  it("a failed verify check removes the artefact and the verify machine, and the error lists the check", async () => {
    const world = new MemoryWorld();
    const project = await load(world, { web: { ...WEB, verify: { checks: [{ command: "false" }, { command: "echo fine" }] } } });
    const { result, events } = await bake(project);

    expect(result.ok).toBe(false);
    const error = result.records[0]?.error;
    expect(error?.code).toBe("E_VERIFY");
    expect(error?.message).toContain("1 of 2 verify checks failed");
    expect(error?.message).toContain("✗ command false");
    expect(error?.message).toContain("expected: exit code 0");
    expect(eventsOf(events, "verify.check").map((event) => [event.check, event.ok])).toEqual([
      ["command false", false],
      ["command echo fine", true],
    ]);
    expect(world.created().map((resource) => resource.role ?? resource.kind)).toEqual(["build", "artifact", "verify"]);
    expect(world.calls.tag).toBe(0);
    expect(world.live()).toEqual([]);
  });
});

describe("onError: abort", () => {
  it("keeps the build machine of a failed provision step and says how to attach; nothing else is left", async () => {
    const world = new MemoryWorld();
    const project = await load(world, { web: webWith({ run: "false" }) });
    const { result, events } = await bake(project, { onError: "abort" });

    expect(result.ok).toBe(false);
    expect(result.records[0]?.error?.code).toBe("E_PROVISION");
    const [machine] = world.created("machine");
    expect(eventsOf(events, "abort.kept")).toEqual([
      expect.objectContaining({ image: "web", machine: machine?.id, attachCommand: `memory attach ${machine?.id}` }),
    ]);
    expect(world.live()).toEqual([expect.objectContaining({ kind: "machine", role: "build", id: machine?.id })]);
  });

  it("still removes everything on Ctrl-C", async () => {
    const world = new MemoryWorld();
    const interrupt = ctrlC();
    const project = await load(world, { web: webWith({ run: "sleep-forever" }) });
    const { result, events } = await bake(project, {
      onError: "abort",
      signal: interrupt.signal,
      onEvent: (event) => {
        if (event.type === "step.start" && event.step === "provision") setImmediate(interrupt.press);
      },
    });

    expectInterrupted(result, world);
    expect(world.created("machine")).toHaveLength(1);
    expect(eventsOf(events, "abort.kept")).toEqual([]);
  });

  it("keeps nothing when verify fails: the build machine is already gone", async () => {
    const world = new MemoryWorld();
    const project = await load(world, { web: { ...WEB, verify: { checks: [{ command: "false" }] } } });
    const { result, events } = await bake(project, { onError: "abort" });

    expect(result.records[0]?.error?.code).toBe("E_VERIFY");
    expect(eventsOf(events, "abort.kept")).toEqual([]);
    expect(world.live()).toEqual([]);
  });
});

describe("timeouts and retries", () => {
  it("an image timeout while launch hangs fails with E_TIMEOUT and leaves nothing", async () => {
    const world = new MemoryWorld();
    const launch = world.inject("launch", "hang");
    const { result } = await bake(await load(world, { web: { ...WEB, timeout: "500ms" } }), { graceMs: 200 });

    expect(launch.hits).toBe(1);
    expect(result.interrupted).toBe(false);
    expect(result.records[0]?.error).toMatchObject({
      code: "E_TIMEOUT",
      message: 'image "web" timed out after 500ms',
      hint: "raise the image's `timeout:`",
    });
    expect(world.live()).toEqual([]);
  });

  it("a provision step that outlives its timeout fails with E_TIMEOUT naming the step", async () => {
    const world = new MemoryWorld();
    const { result } = await bake(await load(world, { web: webWith({ run: "sleep-forever", timeout: "200ms" }) }));

    expect(result.interrupted).toBe(false);
    expect(result.records[0]?.error).toMatchObject({ code: "E_TIMEOUT", message: "provision[0] step timed out after 200ms" });
    expect(world.created("machine")).toHaveLength(1);
    expect(world.live()).toEqual([]);
  });

  it("a provision step with max_retries that fails once is run again and the bake succeeds", async () => {
    const world = new MemoryWorld();
    const { result, events } = await bake(await load(world, { web: webWith({ run: "fail-first 1", max_retries: 1 }) }));

    expect(result.ok).toBe(true);
    expect(world.execs.filter((exec) => exec.command === "fail-first 1")).toHaveLength(2);
    expect(eventsOf(events, "step.retry")).toEqual([
      expect.objectContaining({ step: "provision", attempt: 1, error: '"fail-first 1" exited with 1' }),
    ]);
  });

  it("a provision step that times out on every attempt fails with E_TIMEOUT after max_retries", async () => {
    const world = new MemoryWorld();
    const project = await load(world, { web: webWith({ run: "sleep-forever", timeout: "200ms", max_retries: 1 }) });
    const { result, events } = await bake(project);

    expect(result.records[0]?.error?.code).toBe("E_TIMEOUT");
    expect(world.execs.filter((exec) => exec.command === "sleep-forever")).toHaveLength(2);
    expect(eventsOf(events, "step.retry")).toHaveLength(1);
    expect(world.live()).toEqual([]);
  });

  it("Ctrl-C during the pause between provision attempts ends the step at once, with no further attempt", async () => {
    const world = new MemoryWorld();
    const interrupt = ctrlC();
    const project = await load(world, { web: webWith({ run: "fail-first 5", max_retries: 3 }) });
    const { result, events } = await bake(project, {
      signal: interrupt.signal,
      onEvent: (event) => {
        if (event.type === "step.retry") interrupt.press();
      },
    });

    expectInterrupted(result, world);
    expect(eventsOf(events, "step.retry")).toEqual([expect.objectContaining({ step: "provision", attempt: 1 })]);
    expect(world.execs.filter((exec) => exec.command === "fail-first 5")).toHaveLength(1);
    expect(world.calls.capture).toBe(0);
  });
});

describe("Ctrl-C leaves nothing behind", () => {
  // Each step, and the platform call that is in flight during it.
  const steps: [StepName, MemoryStep][] = [
    ["resolve", "resolveSource"],
    ["launch", "launch"],
    ["provision", "exec"],
    ["capture", "capture"],
    ["verify", "launchArtifact"],
    ["tag", "tag"],
  ];
  const order = steps.map(([step]) => step);

  it.each(steps)("as the %s step starts", async (step) => {
    const world = new MemoryWorld();
    const interrupt = ctrlC();
    const { result, events } = await bake(await load(world, { web: WEB }), {
      signal: interrupt.signal,
      onEvent: (event) => {
        if (event.type === "step.start" && event.step === step) interrupt.press();
      },
    });

    expectInterrupted(result, world);
    expect(startedSteps(events)).toEqual(order.slice(0, order.indexOf(step) + 1));
    expect(eventsOf(events, "run.end")).toEqual([expect.objectContaining({ ok: false, interrupted: true })]);
  });

  it("as the launch step starts: no machine is created at all, not even one removed again", async () => {
    const world = new MemoryWorld();
    const interrupt = ctrlC();
    const { result } = await bake(await load(world, { web: WEB }), {
      signal: interrupt.signal,
      onEvent: (event) => {
        if (event.type === "step.start" && event.step === "launch") interrupt.press();
      },
    });

    expectInterrupted(result, world);
    expect(world.calls.launch).toBe(0);
    expect(world.created()).toEqual([]);
  });

  // The call returns after Ctrl-C, having done its work: what it created then must be removed too.
  it.each(steps)("while the %s step's %s call is in flight", async (step, call) => {
    const world = new MemoryWorld();
    const interrupt = ctrlC();
    const held = world.inject(call, "slow", { times: 1 });
    void held.reached.then(() => {
      interrupt.press();
      setImmediate(held.release);
    });
    const { result, events } = await bake(await load(world, { web: WEB }), { signal: interrupt.signal });

    expect(held.hits).toBe(1);
    expectInterrupted(result, world);
    expect(startedSteps(events)).toEqual(order.slice(0, order.indexOf(step) + 1));
  });

  it("while a verify check runs", async () => {
    const world = new MemoryWorld();
    const interrupt = ctrlC();
    const project = await load(world, { web: { ...WEB, verify: { checks: [{ command: "sleep-forever" }] } } });
    const { result } = await bake(project, {
      signal: interrupt.signal,
      onEvent: (event) => {
        if (event.type === "step.start" && event.step === "verify") setImmediate(interrupt.press);
      },
    });

    expectInterrupted(result, world);
    expect(world.created().map((resource) => resource.role ?? resource.kind)).toEqual(["build", "artifact", "verify"]);
  });

  it("while tagging a cached artefact: the artefact, which this run did not make, is kept", async () => {
    const world = new MemoryWorld();
    const project = await load(world, { web: WEB });
    const first = await bake(project);
    const interrupt = ctrlC();
    const { result } = await bake(project, {
      signal: interrupt.signal,
      onEvent: (event) => {
        if (event.type === "step.start" && event.step === "tag") interrupt.press();
      },
    });

    expect(result.interrupted).toBe(true);
    expect(result.records[0]?.error?.code).toBe("E_INTERRUPTED");
    expect(ids(world.live())).toEqual([first.result.records[0]?.artifact?.id]);
  });

  it("a launch that returns after Ctrl-C: the runner waits for it, and the machine it created is removed", async () => {
    const world = new MemoryWorld();
    const interrupt = ctrlC();
    const launch = world.inject("launch", "slow");
    void launch.reached.then(interrupt.press);
    let createdBeforeRelease: number | undefined;
    const { result, events } = await bake(await load(world, { web: WEB }), {
      signal: interrupt.signal,
      graceMs: 10_000,
      onEvent: (event) => {
        // The runner says it is waiting for the abandoned launch: only now does the create call return.
        if (event.type === "log" && event.message.startsWith("waiting up to")) {
          createdBeforeRelease = world.created().length;
          launch.release();
        }
      },
    });

    expect(createdBeforeRelease).toBe(0);
    expect(world.created("machine")).toHaveLength(1);
    expectInterrupted(result, world);
    expect(eventsOf(events, "log").filter((event) => event.level === "warn")).toEqual([]);
  });

  it("a launch that never returns after Ctrl-C: the run still ends once the grace period is over", async () => {
    const world = new MemoryWorld();
    const interrupt = ctrlC();
    const launch = world.inject("launch", "hang");
    void launch.reached.then(interrupt.press);
    const { result, events } = await bake(await load(world, { web: WEB }), { signal: interrupt.signal, graceMs: 200 });

    expectInterrupted(result, world);
    expect(eventsOf(events, "log").map((event) => event.message)).toContainEqual(expect.stringContaining("did not return within 200ms"));
    expect(eventsOf(events, "run.end")).toHaveLength(1);
  });

  it("a launch that returns after the run ended: the machine it registers then is removed at once", async () => {
    const world = new MemoryWorld();
    const interrupt = ctrlC();
    const launch = world.inject("launch", "slow");
    void launch.reached.then(interrupt.press);
    const { result } = await bake(await load(world, { web: WEB }), { signal: interrupt.signal, graceMs: 200 });
    expectInterrupted(result, world);
    expect(world.created()).toEqual([]);

    launch.release();

    await vi.waitFor(() => {
      expect(world.created("machine")).toHaveLength(1);
      expect(world.live()).toEqual([]);
    });
  });

  it("while the parent bakes: the child never starts", async () => {
    const world = new MemoryWorld();
    const interrupt = ctrlC();
    const project = await load(world, { base: WEB, app: { driver: "memory", from: "base" } });
    const { result } = await bake(project, {
      signal: interrupt.signal,
      onEvent: (event) => {
        if (event.type === "step.start" && event.step === "provision") interrupt.press();
      },
    });

    expectInterrupted(result, world);
    expect(result.records.map((record) => record.image)).toEqual(["base"]);
    expect(world.calls.launch).toBe(1);
  });
});

describe("cleanup", () => {
  it("a machine removal that hangs is given up after the cleanup timeout and reported with its manual command", async () => {
    const world = new MemoryWorld();
    world.inject("dispose", "hang");
    const { result, events } = await bake(await load(world, { web: webWith({ run: "false" }) }), { cleanupTimeoutMs: 300 });

    // The bake's own error is not replaced by the cleanup's.
    expect(result.records[0]?.error?.code).toBe("E_PROVISION");
    const [machine] = world.created("machine");
    const failure = {
      resource: `memory machine ${machine?.id}`,
      error: expect.stringContaining("did not finish within 300ms"),
      manualCommand: `memory rm ${machine?.id}`,
    };
    expect(result.cleanupFailures).toContainEqual(failure);
    expect(eventsOf(events, "cleanup.failed")).toContainEqual(expect.objectContaining({ image: "web", ...failure }));
    // What is reported is what is left.
    expect(ids(world.live())).toEqual([machine?.id]);
  });

  it("a machine removal that fails once is retried: nothing is left and nothing is reported", async () => {
    const world = new MemoryWorld();
    const refused = world.inject("dispose", "fail", { times: 1 });
    const { result, events } = await bake(await load(world, { web: webWith({ run: "false" }) }));

    expect(refused.hits).toBe(1);
    expect(result.cleanupFailures).toEqual([]);
    expect(eventsOf(events, "cleanup.failed")).toEqual([]);
    expect(world.live()).toEqual([]);
  });

  it("a build machine removal right after capture that fails once is retried: the bake succeeds and reports nothing", async () => {
    const world = new MemoryWorld();
    const refused = world.inject("dispose", "fail", { times: 1 });
    const { result, events } = await bake(await load(world, { web: WEB }));

    // The first removal is the build machine's, started as soon as the artefact is captured.
    expect(refused.hits).toBe(1);
    expect(result.cleanupFailures).toEqual([]);
    expect(eventsOf(events, "cleanup.failed")).toEqual([]);
    expect(result.ok).toBe(true);
    expect(result.records[0]?.status).toBe("baked");
    expect(world.created().map((resource) => resource.role ?? resource.kind)).toEqual(["build", "artifact", "verify"]);
    expect(ids(world.live())).toEqual([result.records[0]?.artifact?.id]);
  });
});

describe("from: (parent and child images)", () => {
  it("a failed parent skips its child", async () => {
    const world = new MemoryWorld();
    const project = await load(world, { base: webWith({ run: "false" }), app: { driver: "memory", from: "base" } });
    const { result, events } = await bake(project);

    expect(result.ok).toBe(false);
    expect(result.records.map((record) => [record.image, record.status])).toEqual([
      ["base", "failed"],
      ["app", "skipped"],
    ]);
    expect(result.records[1]?.error).toEqual({ code: "E_SKIPPED", message: 'parent image "base" was not baked' });
    expect(eventsOf(events, "image.skipped")).toEqual([expect.objectContaining({ image: "app" })]);
    expect(world.calls.launch).toBe(1);
    expect(world.live()).toEqual([]);
  });

  it("a failed child leaves the parent's artefact in place", async () => {
    const world = new MemoryWorld();
    const project = await load(world, { base: WEB, app: { driver: "memory", from: "base", provision: [{ step: { run: "exit 1" } }] } });
    const { result } = await bake(project);

    expect(result.ok).toBe(false);
    const [base, app] = result.records;
    expect(base?.status).toBe("baked");
    expect(app?.status).toBe("failed");
    expect(app?.parent).toBe(base?.artifact?.id);
    expect(ids(world.live())).toEqual([base?.artifact?.id]);
    expect(world.live()[0]?.tags).toEqual(["acme/web:1"]);
  });
});

describe("the memory platform (the test double itself)", () => {
  it("finds artefacts by label (a missing value only asks for the key), by id and by tag", async () => {
    const world = new MemoryWorld();
    const { result } = await bake(await load(world, { web: WEB }));
    const silent = { info() {}, warn() {}, debug() {} };
    const driver = memoryDriver(world)({ cwd: ".", stateDir: ".", cacheDir: ".", log: silent });
    const id = result.records[0]?.artifact?.id;
    const found = async (query: ArtifactQuery) => (await driver.findArtifacts(query)).map((artifact) => artifact.id);

    expect(await found({ labels: { [LABELS.image]: "web" } })).toEqual([id]);
    expect(await found({ labels: { [LABELS.image]: "api" } })).toEqual([]);
    expect(await found({ labels: { [LABELS.key]: undefined } })).toEqual([id]);
    expect(await found({ labels: { "dev.example.absent": undefined } })).toEqual([]);
    expect(await found({ ref: id ?? "" })).toEqual([id]);
    expect(await found({ ref: "acme/web:1" })).toEqual([id]);
    expect(await found({ ref: "acme/web:2" })).toEqual([]);
  });
});

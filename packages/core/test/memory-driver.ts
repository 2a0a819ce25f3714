import { z } from "zod";
import { KilnError, type KilnErrorCode } from "../src/errors.js";
import { LABELS } from "../src/provenance.js";
import {
  defineDriver,
  defineProvisioner,
  type Artifact,
  type ArtifactQuery,
  type BakeContext,
  type ChrootConnection,
  type DriverFactory,
  type ExecOptions,
  type ExecResult,
  type Machine,
  type ProvisionerFactory,
} from "../src/types.js";

/**
 * An in-memory platform for lifecycle tests: machines and artefacts live in a Map, every platform call can be made to fail,
 * hang or return late, and machines run a tiny command language. Nothing here touches a container engine or the disk.
 */

/** The platform calls a test can interfere with. `dispose` removes a machine, `remove` an artefact, `exec` runs a command. */
export type MemoryStep =
  | "resolveSource"
  | "launch"
  | "capture"
  | "launchArtifact"
  | "tag"
  | "dispose"
  | "remove"
  | "findArtifacts"
  | "exec";

/**
 * `fail`: the call throws a KilnError at once, having created nothing.
 * `hang`: the call never settles; released, it gives up with a KilnError, having created nothing (a request that timed out).
 * `slow`: the call waits until released, then does its work and returns (a create call answered after Ctrl-C).
 */
export type Fault = "fail" | "hang" | "slow";

export interface MemoryResource {
  kind: "machine" | "artifact";
  id: string;
  /** Machines only: what the machine was started for. */
  role?: "build" | "verify";
  /** Image name in the bake file. */
  image: string;
  /** `dev.kiln.build` of the run that created it. */
  run: string | undefined;
  labels: Record<string, string>;
  /** Artefacts only: tags pointing at it. */
  tags: string[];
  created: string;
}

/** A fault the test injected, and the handle to end it. */
export interface Injection {
  /** Settles when the first call the fault applies to has started: the call is then in flight. */
  readonly reached: Promise<void>;
  /** How many calls the fault applied to so far. */
  readonly hits: number;
  /** Lets held calls go on (`slow` ones finish their work, `hang` ones give up); later calls pass without waiting. */
  release(): void;
}

interface Rule {
  fault: Fault;
  left: number;
  hits: number;
  reach: () => void;
  released: Promise<void>;
}

const ERROR_CODES: Record<MemoryStep, KilnErrorCode> = {
  resolveSource: "E_SOURCE",
  launch: "E_LAUNCH",
  capture: "E_CAPTURE",
  launchArtifact: "E_LAUNCH",
  tag: "E_CAPTURE",
  dispose: "E_CLEANUP",
  remove: "E_CLEANUP",
  findArtifacts: "E_INTERNAL",
  exec: "E_LAUNCH",
};

/** The shared platform: what exists, what was ever created, and how many times each call was made. */
export class MemoryWorld {
  /** Live resources by id. */
  readonly resources = new Map<string, MemoryResource>();
  /** Every resource ever created, in order (removed ones included), so a test can check that created = removed. */
  readonly history: MemoryResource[] = [];
  /** Calls made to each platform call (including ones a fault applied to). */
  readonly calls: Record<MemoryStep, number> = {
    resolveSource: 0,
    launch: 0,
    capture: 0,
    launchArtifact: 0,
    tag: 0,
    dispose: 0,
    remove: 0,
    findArtifacts: 0,
    exec: 0,
  };
  /** Commands run on machines, in order; `aborted` when the command was given an aborted signal. */
  readonly execs: { machine: string; command: string; aborted: boolean }[] = [];
  private readonly faults = new Map<MemoryStep, Rule[]>();
  /** How many times each `fail-first` command has run, across machines (a retried step runs on the same machine). */
  private readonly runs = new Map<string, number>();
  private nextId = 1;

  /** Makes the next `times` calls of `step` (default: every call) behave as `fault`. */
  inject(step: MemoryStep, fault: Fault, options: { times?: number } = {}): Injection {
    let reach = () => {};
    const reached = new Promise<void>((resolve) => {
      reach = resolve;
    });
    let release = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const rule: Rule = { fault, left: options.times ?? Number.POSITIVE_INFINITY, hits: 0, reach, released };
    this.faults.set(step, [...(this.faults.get(step) ?? []), rule]);
    return {
      reached,
      get hits() {
        return rule.hits;
      },
      release,
    };
  }

  /** Live resources, optionally of one kind or run. */
  live(filter: { kind?: MemoryResource["kind"]; run?: string } = {}): MemoryResource[] {
    const wanted = (resource: MemoryResource) =>
      (filter.kind === undefined || resource.kind === filter.kind) && (filter.run === undefined || resource.run === filter.run);
    return [...this.resources.values()].filter(wanted);
  }

  /** Every resource ever created, optionally of one kind. */
  created(kind?: MemoryResource["kind"]): MemoryResource[] {
    return this.history.filter((resource) => kind === undefined || resource.kind === kind);
  }

  /** Counts the call and applies the first fault that still has calls left. */
  async enter(step: MemoryStep): Promise<void> {
    this.calls[step] += 1;
    const rule = this.faults.get(step)?.find((candidate) => candidate.left > 0);
    if (!rule) return;
    rule.left -= 1;
    rule.hits += 1;
    rule.reach();
    if (rule.fault === "fail") throw new KilnError(ERROR_CODES[step], `memory platform: ${step} refused (injected fault)`);
    await rule.released;
    if (rule.fault === "hang") throw new KilnError(ERROR_CODES[step], `memory platform: ${step} gave up (injected fault)`);
  }

  add(resource: Omit<MemoryResource, "id" | "created">, prefix: string): MemoryResource {
    const created = { ...resource, id: `${prefix}-${this.nextId++}`, created: new Date().toISOString() };
    this.resources.set(created.id, created);
    this.history.push(created);
    return created;
  }

  delete(id: string): void {
    this.resources.delete(id);
  }

  /** Runs one command of the tiny language (see MemoryMachine.exec). */
  async interpret(command: string, options: ExecOptions): Promise<ExecResult> {
    const { signal } = options;
    if (signal?.aborted) throw abortReason(signal);
    const [word = "", ...args] = command.trim().split(/\s+/);
    const exit = (exitCode: number, stdout = ""): ExecResult => ({ exitCode, stdout, stderr: "" });
    switch (word) {
      case "true":
        return exit(0);
      case "false":
        return exit(1);
      case "exit":
        return exit(Number(args[0] ?? 0));
      case "echo": {
        const text = `${args.join(" ")}\n`;
        options.onOutput?.("stdout", text);
        return exit(0, text);
      }
      case "fail-first": {
        const count = this.runs.get(command) ?? 0;
        this.runs.set(command, count + 1);
        return exit(count < Number(args[0] ?? 0) ? 1 : 0);
      }
      case "sleep-forever":
        return sleepForever(options);
      default:
        return exit(0);
    }
  }
}

/** Settles only when the signal aborts (or the exec timeout passes), as a stuck command whose session is closed. */
function sleepForever({ signal, timeout }: ExecOptions): Promise<never> {
  return new Promise<never>((_resolve, reject) => {
    const timedOut = () => reject(new KilnError("E_TIMEOUT", `command timed out after ${timeout}ms`));
    const timer = timeout === undefined ? undefined : setTimeout(timedOut, timeout);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(abortReason(signal));
      },
      { once: true },
    );
  });
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new KilnError("E_INTERRUPTED", "command aborted");
}

/** `/bin/sh -c <script> …` runs the script (a probe's arguments are ignored); any other argv runs as one command line. */
function commandLine(cmd: string | string[]): string {
  if (typeof cmd === "string") return cmd;
  const [program, flag, script] = cmd;
  if ((program === "/bin/sh" || program === "sh") && flag === "-c") return script ?? "";
  return cmd.join(" ");
}

/**
 * A machine of the memory platform. `exec` understands `true`, `false`, `exit N`, `echo X`, `fail-first N` (exits 1 on its
 * first N runs, then 0) and `sleep-forever` (settles only when its signal aborts); any other command exits 0.
 */
export class MemoryMachine implements Machine {
  readonly connection: ChrootConnection;
  private removing: Promise<void> | undefined;

  constructor(
    private readonly world: MemoryWorld,
    readonly id: string,
  ) {
    this.connection = { kind: "chroot", path: `/memory/${id}` };
  }

  async exec(cmd: string | string[], options: ExecOptions = {}): Promise<ExecResult> {
    const command = commandLine(cmd);
    this.world.execs.push({ machine: this.id, command, aborted: options.signal?.aborted ?? false });
    await this.world.enter("exec");
    if (!this.world.resources.has(this.id)) throw new KilnError("E_LAUNCH", `memory machine ${this.id} is gone`);
    return this.world.interpret(command, options);
  }

  async upload(): Promise<void> {}

  async download(): Promise<void> {}

  attachCommand(): string {
    return `memory attach ${this.id}`;
  }

  /** Idempotent: removing a machine that is gone does nothing; a removal that failed can be tried again. */
  remove(): Promise<void> {
    if (!this.world.resources.has(this.id)) return Promise.resolve();
    this.removing ??= this.world
      .enter("dispose")
      .then(() => this.world.delete(this.id))
      .finally(() => {
        this.removing = undefined;
      });
    return this.removing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.remove();
  }
}

export const memoryOptionsSchema = z.strictObject({ source: z.string().optional() });
export type MemoryOptions = z.infer<typeof memoryOptionsSchema>;

/** A driver for the memory platform: registers its cleanups the way a real driver does, once the create call has returned. */
export function memoryDriver(world: MemoryWorld): DriverFactory<MemoryOptions> {
  const startMachine = (ctx: BakeContext, role: "build" | "verify"): MemoryMachine => {
    const labels = { ...ctx.resourceLabels };
    const resource = world.add({ kind: "machine", role, image: ctx.image, run: labels[LABELS.build], labels, tags: [] }, role);
    const machine = new MemoryMachine(world, resource.id);
    // Only now is the id known: a call abandoned on Ctrl-C that returns later registers its cleanup late.
    ctx.defer(() => machine.remove(), { resource: `memory machine ${machine.id}`, manualCommand: `memory rm ${machine.id}` });
    return machine;
  };
  const removeArtifact = async (id: string) => {
    if (!world.resources.has(id)) return;
    await world.enter("remove");
    world.delete(id);
  };
  const toArtifact = (resource: MemoryResource): Artifact => ({
    id: resource.id,
    driver: "memory",
    image: resource.image,
    tags: [...resource.tags],
    labels: { ...resource.labels },
    created: resource.created,
  });
  const liveArtifact = (id: string, code: KilnErrorCode): MemoryResource => {
    const resource = world.resources.get(id);
    if (resource?.kind !== "artifact") throw new KilnError(code, `memory platform: no artefact ${id}`);
    return resource;
  };

  return defineDriver<MemoryOptions>(() => ({
    name: "memory",
    schema: memoryOptionsSchema,
    connectionKinds: ["chroot"],

    async resolveSource(ctx, opts) {
      await world.enter("resolveSource");
      if (ctx.parent) return { id: ctx.parent.id, digest: ctx.parent.id, description: `${ctx.parent.image} (${ctx.parent.id})` };
      if (opts.source === undefined) throw new KilnError("E_CONFIG", `image "${ctx.image}" has no source`);
      return { id: `source:${opts.source}`, description: opts.source };
    },

    async launch(ctx) {
      await world.enter("launch");
      return startMachine(ctx, "build");
    },

    async capture(ctx, machine, target) {
      await world.enter("capture");
      if (!world.resources.has(machine.id)) throw new KilnError("E_CAPTURE", `memory platform: machine ${machine.id} is gone`);
      const labels = { ...target.labels };
      const resource = world.add({ kind: "artifact", image: ctx.image, run: labels[LABELS.build], labels, tags: [] }, "artifact");
      // Only a failed bake removes it (verify failed, Ctrl-C); a successful one keeps it.
      ctx.defer(() => removeArtifact(resource.id), {
        when: "failure",
        resource: `memory artefact ${resource.id}`,
        manualCommand: `memory rmi ${resource.id}`,
      });
      return toArtifact(resource);
    },

    async launchArtifact(ctx, artifact) {
      await world.enter("launchArtifact");
      liveArtifact(artifact.id, "E_LAUNCH");
      return startMachine(ctx, "verify");
    },

    async findArtifacts(query: ArtifactQuery) {
      await world.enter("findArtifacts");
      const wanted = Object.entries(query.labels ?? {});
      return (
        world
          .live({ kind: "artifact" })
          .filter((resource) => query.ref === undefined || resource.id === query.ref || resource.tags.includes(query.ref))
          // A label asked for without a value only has to exist.
          .filter(({ labels }) => wanted.every(([key, value]) => (value === undefined ? key in labels : labels[key] === value)))
          .map(toArtifact)
      );
    },

    async tag(artifact, tag) {
      await world.enter("tag");
      const target = liveArtifact(artifact.id, "E_CAPTURE");
      // A tag points at one artefact: moving it takes it off any other.
      for (const resource of world.live({ kind: "artifact" })) resource.tags = resource.tags.filter((existing) => existing !== tag);
      target.tags.push(tag);
    },

    async remove(artifact) {
      await removeArtifact(artifact.id);
    },
  }));
}

/** `- step: { run: <command> }`: runs the command on the build machine and fails on a non-zero exit. */
export const stepProvisioner: ProvisionerFactory<{ run: string }> = defineProvisioner(() => ({
  name: "step",
  schema: z.strictObject({ run: z.string() }),
  fingerprint: async (_ctx, opts) => opts.run,
  async run(ctx, machine, opts) {
    const result = await machine.exec(opts.run, { signal: ctx.signal, onOutput: ctx.output });
    if (result.exitCode !== 0) throw new KilnError("E_PROVISION", `"${opts.run}" exited with ${result.exitCode}`);
  },
}));

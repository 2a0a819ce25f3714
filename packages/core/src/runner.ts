import { randomBytes } from "node:crypto";
import { availableParallelism } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import pLimit from "p-limit";
import { CleanupStack, DEFAULT_CLEANUP_TIMEOUT_MS, type CleanupFailure } from "./cleanup.js";
import type { ImageSpec, ProvisionStep, Project } from "./config/load.js";
import { createBakeContext, withSignal, type RunnerContext } from "./context.js";
import { formatDuration } from "./duration.js";
import { KilnError, toKilnError } from "./errors.js";
import type { KilnEvent, KilnEventInput, StepName, StepTiming } from "./events.js";
import { findCached, resolveInputs } from "./image-inputs.js";
import { gitDescription, LABELS, provenanceLabels } from "./provenance.js";
import { PendingWork, untilAborted } from "./abort.js";
import { selectImages } from "./selection.js";
import { retry } from "./retry.js";
import type { Artifact, FleetCall, Machine, SourceRef } from "./types.js";
import { redactDeep } from "./variables.js";
import { verifyArtifact } from "./verify/artifact.js";
import { checkRuntimeOnly } from "./verify/runtime-only.js";

export interface BuildOptions {
  project: Project;
  /** Bake only these images (their parents are baked too, since children are built on them). */
  only?: string[];
  /** Bake every image but these (and their children). */
  except?: string[];
  /** `cleanup` (default) removes everything on failure; `abort` keeps the build machine and says how to attach. */
  onError?: "cleanup" | "abort";
  /** Abort to interrupt the run (Ctrl-C): the current steps stop and everything is cleaned up. */
  signal?: AbortSignal;
  onEvent?: (event: KilnEvent) => void;
  runId?: string;
  /** Written to `dev.kiln.version`. */
  kilnVersion: string;
  /** Rebake even when an artefact with the same bake key exists: `true` for every image, or the names of some. */
  force?: boolean | string[];
  /** How many images bake at once (independent images only; a child always waits for its parent). */
  parallel?: number;
  /** How long one cleanup may take, retries included, unless the driver says otherwise. Default 2 minutes. */
  cleanupTimeoutMs?: number;
  /**
   * After Ctrl-C or a timeout, how long to wait for the abandoned step to return before unwinding, so that what it was
   * creating is registered and removed. Default 30 s.
   */
  graceMs?: number;
}

/** What one image's bake carries through its steps. */
interface Bake {
  ctx: RunnerContext;
  record: BuildRecord;
  /** Steps given up on (Ctrl-C, timeout) that have not returned yet. */
  pending: PendingWork;
}

export const DEFAULT_GRACE_MS = 30_000;

/** One bake per core, at most 4: a bake mostly waits on the engine, but commits and image writes load the disk. */
export function defaultParallelism(): number {
  return Math.max(1, Math.min(4, availableParallelism()));
}

export interface BuildRecord {
  image: string;
  driver: string;
  /** `cached`: an artefact with the same bake key existed and was reused. */
  status: "baked" | "cached" | "failed" | "skipped";
  artifact?: Artifact;
  bakeKey?: string;
  /** Parent artefact id when built `from:` another image. */
  parent?: string;
  source?: SourceRef;
  startedAt: string;
  durationMs: number;
  steps: StepTiming[];
  error?: { code: string; message: string; hint?: string };
}

export interface BuildResult {
  runId: string;
  /** Every selected image has an artefact, nothing was interrupted and every cleanup succeeded. */
  ok: boolean;
  interrupted: boolean;
  records: BuildRecord[];
  cleanupFailures: CleanupFailure[];
}

/**
 * What `--on-error=abort` keeps, in the order to remove it (newest first, as unwinding would), each with the command its
 * plugin registered. The runner's own entry for the build machine carries no command; it is left out when the plugins gave
 * commands (the driver registers one for the machine it launched).
 */
function keptResources(cleanup: CleanupStack, ownMachineEntry: string): { resource: string; manualCommand?: string }[] {
  const kept = cleanup.pending().reverse();
  if (!kept.some((entry) => entry.manualCommand)) return kept;
  return kept.filter((entry) => entry.manualCommand || entry.resource !== ownMachineEntry);
}

/** `20261127-0629-3f2a1b` — sortable, short enough for resource names. */
export function newRunId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 13);
  return `${stamp}-${randomBytes(3).toString("hex")}`;
}

/** One `kiln build`: bakes the selected images in dependency order. */
export class BuildRun {
  readonly runId: string;
  private readonly stacks = new Set<CleanupStack>();
  private readonly emitEvent: (event: KilnEventInput) => void;

  constructor(private readonly options: BuildOptions) {
    this.runId = options.runId ?? newRunId();
    const redact = options.project.redact;
    this.emitEvent = (event) => options.onEvent?.({ ...redactDeep(event, redact), time: new Date().toISOString() });
  }

  /** Resources created and not yet removed: what a forced exit (second Ctrl-C) leaves behind. */
  leftovers(): { resource: string; manualCommand?: string }[] {
    return [...this.stacks].flatMap((stack) => stack.pending());
  }

  async run(): Promise<BuildResult> {
    const started = Date.now();
    const images = selectImages(this.options.project.images, this.options.only, this.options.except);
    this.emitEvent({ type: "run.start", runId: this.runId, images: images.map((image) => image.name) });
    // Asked once, and only when something is captured: a run where everything is cached never spawns git.
    let gitAnswer: Promise<string> | undefined;
    const git = () => (gitAnswer ??= gitDescription(this.options.project.dir));
    const limit = pLimit(this.options.parallel ?? defaultParallelism());
    const cleanupFailures: CleanupFailure[] = [];
    const outcomes = new Map<string, Promise<BuildRecord | undefined>>();
    // Images are in dependency order, so a parent's promise always exists before its children ask for it.
    for (const image of images) {
      outcomes.set(
        image.name,
        (async () => {
          const parentRecord = image.from === undefined ? undefined : await outcomes.get(image.from);
          if (this.options.signal?.aborted) return undefined;
          if (image.from !== undefined && !parentRecord?.artifact) return this.skip(image, `parent image "${image.from}" was not baked`);
          // A slot is taken only once the parent is done, so waiting children never block independent images.
          return limit(async () => {
            if (this.options.signal?.aborted) return undefined;
            const { record, failures } = await this.bakeImage(image, parentRecord?.artifact, git);
            cleanupFailures.push(...failures);
            return record;
          });
        })(),
      );
    }
    const records = (await Promise.all(outcomes.values())).filter((record): record is BuildRecord => record !== undefined);
    const interrupted = this.options.signal?.aborted ?? false;
    // A bake that left something behind did not succeed, whatever it produced: someone has to remove it.
    const allBaked = records.length === images.length && records.every((record) => record.artifact !== undefined);
    const ok = !interrupted && allBaked && cleanupFailures.length === 0;
    this.emitEvent({ type: "run.end", runId: this.runId, ok, durationMs: Date.now() - started, interrupted });
    return { runId: this.runId, ok, interrupted, records, cleanupFailures };
  }

  private skip(image: ImageSpec, reason: string): BuildRecord {
    this.emitEvent({ type: "image.skipped", image: image.name, reason });
    return {
      image: image.name,
      driver: image.driverName,
      status: "skipped",
      startedAt: new Date().toISOString(),
      durationMs: 0,
      steps: [],
      error: { code: "E_SKIPPED", message: reason },
    };
  }

  private forced(image: ImageSpec): boolean {
    const force = this.options.force;
    return force === true || (Array.isArray(force) && force.includes(image.name));
  }

  private async bakeImage(
    image: ImageSpec,
    parent: Artifact | undefined,
    git: () => Promise<string>,
  ): Promise<{ record: BuildRecord; failures: CleanupFailure[] }> {
    const { project } = this.options;
    const started = Date.now();
    const record: BuildRecord = {
      image: image.name,
      driver: image.driverName,
      status: "failed",
      startedAt: new Date(started).toISOString(),
      durationMs: 0,
      steps: [],
    };
    if (parent) record.parent = parent.id;
    const cleanup = new CleanupStack({ timeoutMs: this.options.cleanupTimeoutMs ?? DEFAULT_CLEANUP_TIMEOUT_MS });
    this.stacks.add(cleanup);
    const signals = [this.options.signal, image.timeoutMs === undefined ? undefined : AbortSignal.timeout(image.timeoutMs)];
    const signal = AbortSignal.any(signals.filter((item): item is AbortSignal => item !== undefined));
    const ctx = createBakeContext({
      runId: this.runId,
      image: image.name,
      cwd: project.dir,
      variables: project.variables,
      parent,
      signal,
      keepsMachineOnFailure: this.options.onError === "abort",
      cleanup,
      emit: this.emitEvent,
      redact: project.redact,
      allowedPaths: image.allowedPaths,
    });
    const bake: Bake = { ctx, record, pending: new PendingWork() };
    const step = <T>(name: StepName, detail: string | undefined, work: () => Promise<T>) => this.step(bake, name, detail, work);
    const { driver, driverOptions: opts } = image;
    const call: FleetCall = { signal, log: ctx.log };
    let buildMachine: Machine | undefined;
    let failures: CleanupFailure[] = [];
    try {
      const { source, key, summary } = await step("resolve", undefined, () => resolveInputs(ctx, image, project.variables));
      record.source = source;
      record.bakeKey = key;
      const cached = this.forced(image)
        ? undefined
        : await untilAborted(bake.pending.track(findCached(project.name, image, key, call)), signal);
      if (cached) {
        await step("tag", image.tags.join(", ") || undefined, async () => {
          for (const tag of image.tags) await driver.tag(cached, tag, opts, call);
        });
        record.artifact = await this.publish(bake, image, { ...cached, tags: [...new Set([...cached.tags, ...image.tags])] });
        record.status = "cached";
        failures = await cleanup.unwind("success");
        return { record, failures };
      }
      this.emitEvent({
        type: "image.start",
        image: image.name,
        driver: image.driverName,
        bakeKey: key,
        ...(parent ? { parent: parent.id } : {}),
      });

      const launched = Date.now();
      const machine = await step("launch", source.description, () => driver.launch(ctx, source, opts));
      buildMachine = machine;
      cleanup.defer(() => machine[Symbol.asyncDispose](), { resource: `build machine ${machine.id}` });
      for (const item of image.provision) await this.provisionStep(bake, item, machine);
      const runtimeOnly = image.runtimeOnly;
      if (runtimeOnly) {
        await step("runtime-only", undefined, async () => {
          const minutes = Math.ceil((Date.now() - launched) / 60_000);
          const report = await checkRuntimeOnly(machine, runtimeOnly, project.variables, minutes, ctx.signal);
          for (const warning of report.warnings) ctx.log.warn(warning);
          if (report.problems.length > 0) {
            throw new KilnError(
              "E_RUNTIME_ONLY",
              `image "${image.name}" bakes in runtime configuration:\n${report.problems.map((problem) => `  ✗ ${problem}`).join("\n")}`,
              {
                hint: "inject it at boot (verify.runtime shows how); nothing was captured",
              },
            );
          }
        });
      }

      const labels = {
        ...image.labels,
        ...provenanceLabels({
          runId: this.runId,
          project: project.name,
          image: image.name,
          key,
          parent,
          source,
          git: await git(),
          version: this.options.kilnVersion,
          verified: image.verify.length > 0,
          plugins: image.plugins,
        }),
        [LABELS.inputs]: JSON.stringify(summary),
      };
      const artifact = await step("capture", undefined, () => driver.capture(ctx, machine, { labels, tags: image.tags }, opts));
      // The build machine is not needed after capture: remove it while verify runs (the cleanup stack waits for it).
      buildMachine = undefined;
      let removal: Promise<void> | undefined = Promise.resolve(machine[Symbol.asyncDispose]());
      removal.catch(() => {});
      cleanup.defer(
        () => {
          // The first attempt waits for the removal under way; a retry removes again rather than re-awaiting its failure.
          const started = removal;
          removal = undefined;
          return started ?? machine[Symbol.asyncDispose]();
        },
        { resource: `build machine ${machine.id}` },
      );

      if (image.verify.length > 0) {
        const checks = image.verify.reduce((count, scenario) => count + scenario.checks.length, 0);
        const detail = `${checks} check${checks === 1 ? "" : "s"}${image.verify.length > 1 ? ` in ${image.verify.length} scenarios` : ""}`;
        await step("verify", detail, () => verifyArtifact(ctx, image, artifact));
      }
      await step("tag", image.tags.join(", ") || undefined, async () => {
        for (const tag of image.tags) await driver.tag(artifact, tag, opts, call);
      });
      record.artifact = await this.publish(bake, image, { ...artifact, tags: [...new Set([...artifact.tags, ...image.tags])] });
      record.status = "baked";
      failures = await cleanup.unwind("success");
    } catch (thrown) {
      const error = this.describeFailure(thrown, image, signal);
      record.error = { code: error.code, message: error.message, ...(error.hint ? { hint: error.hint } : {}) };
      await this.awaitAbandoned(bake);
      if (this.options.onError === "abort" && buildMachine && !this.options.signal?.aborted) {
        this.emitEvent({
          type: "abort.kept",
          image: image.name,
          machine: buildMachine.id,
          attachCommand: buildMachine.attachCommand(),
          kept: keptResources(cleanup, `build machine ${buildMachine.id}`),
        });
      } else {
        failures = await cleanup.unwind("failure");
      }
    } finally {
      // Cleanups registered by a step that returned while (or after) the stack unwound ran at once: wait for them too.
      failures.push(...(await cleanup.settled()));
      this.stacks.delete(cleanup);
      record.durationMs = Date.now() - started;
      this.report(record, failures);
    }
    return { record, failures };
  }

  /** Pushes the artefact beyond this machine when the driver can (a registry): only verified artefacts get there. */
  private async publish(bake: Bake, image: ImageSpec, artifact: Artifact): Promise<Artifact> {
    const publishing = image.driver.publish?.(bake.ctx, artifact, image.driverOptions);
    return publishing ? this.step(bake, "publish", undefined, () => publishing) : artifact;
  }

  private report(record: BuildRecord, failures: CleanupFailure[]): void {
    const image = record.image;
    for (const failure of failures) this.emitEvent({ type: "cleanup.failed", image, ...failure });
    if (record.artifact && record.bakeKey) {
      const type = record.status === "cached" ? "image.cached" : "image.done";
      this.emitEvent({
        type,
        image,
        artifact: record.artifact,
        bakeKey: record.bakeKey,
        durationMs: record.durationMs,
        steps: record.steps,
      });
    } else if (record.error) {
      this.emitEvent({ type: "image.failed", image, error: record.error, durationMs: record.durationMs });
    }
  }

  /**
   * A step abandoned on Ctrl-C or a timeout may still be creating something (a container whose create call is in flight):
   * wait for it to return, up to the grace deadline, so its cleanup is registered before the stack unwinds.
   */
  private async awaitAbandoned({ ctx, pending }: Bake): Promise<void> {
    if (pending.size === 0) return;
    const graceMs = this.options.graceMs ?? DEFAULT_GRACE_MS;
    ctx.log.info(`waiting up to ${formatDuration(graceMs)} for the interrupted step to return`);
    if (!(await pending.settle(graceMs))) {
      ctx.log.warn(
        `the interrupted step did not return within ${formatDuration(graceMs)}; what it creates later is removed as soon as it registers it`,
      );
    }
  }

  private async step<T>({ ctx, record, pending }: Bake, name: StepName, detail: string | undefined, work: () => Promise<T>): Promise<T> {
    const started = Date.now();
    this.emitEvent({ type: "step.start", image: ctx.image, step: name, ...(detail ? { detail } : {}) });
    try {
      // Interrupted before the step began: do not start creating something only to remove it again.
      ctx.signal.throwIfAborted();
      return await untilAborted(pending.track(work()), ctx.signal);
    } finally {
      ctx.flushOutput();
      const durationMs = Date.now() - started;
      record.steps.push({ step: name, ...(detail ? { detail } : {}), durationMs });
      this.emitEvent({ type: "step.end", image: ctx.image, step: name, ...(detail ? { detail } : {}), durationMs });
    }
  }

  private async provisionStep(bake: Bake, item: ProvisionStep, machine: Machine): Promise<void> {
    const { ctx, pending } = bake;
    const label = `provision[${item.index}] ${item.name}${item.via ? ` (from ${item.via})` : ""}`;
    await this.step(bake, "provision", label, async () => {
      if (item.pauseBeforeMs) await sleep(item.pauseBeforeMs, undefined, { signal: ctx.signal });
      await retry(
        async () => {
          const timeout = item.timeoutMs === undefined ? undefined : AbortSignal.timeout(item.timeoutMs);
          const signal = timeout ? AbortSignal.any([ctx.signal, timeout]) : ctx.signal;
          try {
            await untilAborted(pending.track(item.provisioner.run(withSignal(ctx, signal), machine, item.options)), signal);
          } catch (error) {
            if (timeout?.aborted && !ctx.signal.aborted) {
              throw new KilnError("E_TIMEOUT", `${label} timed out after ${formatDuration(item.timeoutMs ?? 0)}`, {
                hint: "raise its `timeout:` or make the step faster",
              });
            }
            throw toKilnError(error, "E_PROVISION", `${label} failed`);
          } finally {
            ctx.flushOutput();
          }
        },
        {
          retries: item.maxRetries,
          minDelayMs: 1000,
          isRetryable: () => !ctx.signal.aborted,
          // Ctrl-C during the pause between attempts ends it at once, with no further attempt.
          signal: ctx.signal,
          onRetry: (error, attempt, delayMs) =>
            this.emitEvent({ type: "step.retry", image: ctx.image, step: "provision", attempt, error: (error as Error).message, delayMs }),
        },
      );
    });
  }

  private describeFailure(thrown: unknown, image: ImageSpec, signal: AbortSignal): KilnError {
    if (this.options.signal?.aborted) {
      const reason = this.options.signal.reason;
      return reason instanceof KilnError && reason.code !== "E_INTERRUPTED"
        ? reason
        : new KilnError("E_INTERRUPTED", `image "${image.name}": interrupted`, { cause: thrown });
    }
    if (signal.aborted && !(thrown instanceof KilnError && thrown.code === "E_TIMEOUT")) {
      return new KilnError("E_TIMEOUT", `image "${image.name}" timed out after ${formatDuration(image.timeoutMs ?? 0)}`, {
        hint: "raise the image's `timeout:`",
        cause: thrown,
      });
    }
    return toKilnError(thrown, "E_INTERNAL");
  }
}

export { selectImages, untilAborted };

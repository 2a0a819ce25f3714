import { describeChanges } from "./bake-key.js";
import { CleanupStack } from "./cleanup.js";
import type { ImageSpec, Project } from "./config/load.js";
import { createBakeContext } from "./context.js";
import { KilnError } from "./errors.js";
import { fleetCall, findCached, findLatest, previousSummary, resolveInputs } from "./image-inputs.js";
import { newRunId, selectImages } from "./runner.js";
import type { Artifact } from "./types.js";

export interface PlanEntry {
  image: string;
  /** The image it is built on (`from:`), if any. */
  from?: string;
  action: "cached" | "bake";
  /**
   * For an image to bake: the wave it can bake in, so CI can run each wave's bakes as parallel jobs. 0 when nothing it is built
   * on needs a bake (no parent, or a cached one); otherwise its parent's wave + 1. Absent for a cached image: no job bakes it.
   */
  wave?: number;
  /** Why, in the user's words: `no artefact`, `parent changed (base 1a2b → 9c8d)`, `provision[0] shell changed`… */
  reasons: string[];
  bakeKey?: string;
  /** The artefact that would be reused (cached), or the newest one of the image (bake). */
  artifact?: Artifact;
}

export interface PlanOptions {
  project: Project;
  only?: string[];
  except?: string[];
  force?: boolean | string[];
  signal?: AbortSignal;
}

/**
 * What `kiln build` would do, and why, without creating anything. A child of an image that will be baked is baked too (its
 * parent's new artefact id is part of its key).
 */
export async function planBuild(options: PlanOptions): Promise<PlanEntry[]> {
  const { project } = options;
  const images = selectImages(project.images, options.only, options.except);
  const entries = new Map<string, PlanEntry>();
  const runId = newRunId();
  for (const image of images) {
    const from = image.from === undefined ? {} : { from: image.from };
    const parent = image.from === undefined ? undefined : entries.get(image.from);
    if (parent && parent.action === "bake") {
      const reasons = [`parent ${image.from} will be baked first`];
      entries.set(image.name, { image: image.name, ...from, action: "bake", wave: (parent.wave ?? 0) + 1, reasons });
      continue;
    }
    const entry = await planImage(image, parent?.artifact, options, runId);
    entries.set(image.name, { ...entry, ...from, ...(entry.action === "bake" ? { wave: 0 } : {}) });
  }
  return [...entries.values()];
}

async function planImage(image: ImageSpec, parent: Artifact | undefined, options: PlanOptions, runId: string): Promise<PlanEntry> {
  const { project } = options;
  const ctx = createBakeContext({
    runId,
    image: image.name,
    cwd: project.dir,
    variables: project.variables,
    parent,
    planning: true,
    signal: options.signal ?? new AbortController().signal,
    cleanup: new CleanupStack(),
    emit: () => {},
    redact: project.redact,
    allowedPaths: image.allowedPaths,
  });
  let inputs: Awaited<ReturnType<typeof resolveInputs>>;
  try {
    inputs = await resolveInputs(ctx, image, project.variables);
  } catch (error) {
    if (error instanceof KilnError && error.code === "E_SOURCE")
      return { image: image.name, action: "bake", reasons: [`source not available yet: ${error.message}`] };
    throw error;
  }
  const forced = options.force === true || (Array.isArray(options.force) && options.force.includes(image.name));
  const call = fleetCall(project, ctx.signal);
  const cached = forced ? undefined : await findCached(project.name, image, inputs.key, call);
  if (cached) return { image: image.name, action: "cached", reasons: [], bakeKey: inputs.key, artifact: cached };
  const latest = await findLatest(project.name, image, call);
  const previous = previousSummary(latest);
  const names = { ...(image.from ? { parent: image.from } : {}), steps: image.provision.map((step) => step.name) };
  const changes = previous ? describeChanges(previous, inputs.summary, names) : [];
  const unexplained = previous
    ? "inputs changed (a variable or a sensitive value)"
    : `inputs changed since artefact ${latest?.id.replace(/^sha256:/, "").slice(0, 12)}`;
  const reasons = forced ? ["forced (--force)"] : !latest ? ["no artefact"] : changes.length > 0 ? changes : [unexplained];
  return { image: image.name, action: "bake", reasons, bakeKey: inputs.key, ...(latest ? { artifact: latest } : {}) };
}

import { parse as parseYaml } from "yaml";
import { CleanupStack } from "../cleanup.js";
import { readTextInput } from "../config/read.js";
import type { ImageSpec, Project } from "../config/load.js";
import { runtimeSchema, type RuntimeDefinition } from "../config/verify-schema.js";
import { createBakeContext } from "../context.js";
import { KilnError, toKilnError } from "../errors.js";
import type { KilnEvent } from "../events.js";
import { fleetCall, findByRef, findLatest } from "../image-inputs.js";
import { LABELS } from "../provenance.js";
import { newRunId } from "../runner.js";
import type { Artifact } from "../types.js";
import { redactDeep } from "../variables.js";
import { verifyArtifact } from "./artifact.js";
import type { CheckResult } from "./run.js";

export interface VerifyExistingOptions {
  project: Project;
  /** An image name of the bake file (its newest artefact is verified), or an artefact id or tag. */
  target: string;
  /** Runtime inputs that replace every scenario's `runtime`. */
  runtime?: RuntimeDefinition;
  signal?: AbortSignal;
  onEvent?: (event: KilnEvent) => void;
}

export interface VerifyExistingResult {
  runId: string;
  image: string;
  artifact: Artifact;
  results: CheckResult[];
  error?: KilnError;
}

/** `kiln verify`: runs an image's verify block against an artefact that already exists, without baking. */
export async function verifyExisting(options: VerifyExistingOptions): Promise<VerifyExistingResult> {
  const { project } = options;
  const { image, artifact } = await findTarget(project, options.target, options.signal);
  if (image.verify.length === 0) {
    throw new KilnError("E_CONFIG", `image "${image.name}" has no verify block`, {
      hint: "add verify: { checks: [...] } to it in the bake file",
    });
  }
  const runId = newRunId();
  const cleanup = new CleanupStack();
  const emit = (event: Parameters<Parameters<typeof createBakeContext>[0]["emit"]>[0]) =>
    options.onEvent?.({ ...redactDeep(event, project.redact), time: new Date().toISOString() });
  const ctx = createBakeContext({
    runId,
    image: image.name,
    cwd: project.dir,
    variables: project.variables,
    parent: undefined,
    signal: options.signal ?? new AbortController().signal,
    cleanup,
    emit,
    redact: project.redact,
    allowedPaths: image.allowedPaths,
  });
  let results: CheckResult[] = [];
  let error: KilnError | undefined;
  try {
    results = await verifyArtifact(ctx, image, artifact, options.runtime);
  } catch (thrown) {
    error = toKilnError(thrown, "E_VERIFY");
  } finally {
    const failures = [...(await cleanup.unwind("failure")), ...(await cleanup.settled())];
    for (const failure of failures) emit({ type: "cleanup.failed", image: image.name, ...failure });
  }
  return { runId, image: image.name, artifact, results, ...(error ? { error } : {}) };
}

async function findTarget(
  project: Project,
  target: string,
  signal: AbortSignal | undefined,
): Promise<{ image: ImageSpec; artifact: Artifact }> {
  const call = fleetCall(project, signal);
  const named = project.images.find((image) => image.name === target);
  if (named) {
    const newest = await findLatest(project.name, named, call);
    if (!newest)
      throw new KilnError("E_CONFIG", `no artefact of image "${target}" exists`, { hint: `bake it first: kiln build --only ${target}` });
    return { image: named, artifact: newest };
  }
  const artifact = await findByRef(project, target, call);
  if (artifact) {
    const imageName = artifact.labels[LABELS.image];
    const image = project.images.find((candidate) => candidate.name === imageName);
    if (!image) {
      throw new KilnError(
        "E_CONFIG",
        `artefact ${target} was baked from image "${imageName ?? "?"}", which this bake file does not define`,
        {
          hint: "run kiln verify from the project that baked it",
        },
      );
    }
    return { image, artifact };
  }
  throw new KilnError("E_CONFIG", `"${target}" is neither an image of this bake file nor an artefact id or tag`, {
    hint: `images: ${project.images.map((image) => image.name).join(", ")}`,
  });
}

/** Reads `--runtime-file` (YAML or JSON with env, files, boot_script, user_data). */
export async function readRuntimeFile(path: string): Promise<RuntimeDefinition> {
  let data: unknown;
  try {
    data = parseYaml(await readTextInput(path, path, "runtime file"), { maxAliasCount: 100 });
  } catch (error) {
    if (error instanceof KilnError) throw error;
    throw new KilnError("E_CONFIG", `cannot read runtime file ${path}: ${(error as Error).message.split("\n")[0]}`);
  }
  const parsed = runtimeSchema.safeParse(data);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join(".") || "(top)"}: ${issue.message}`);
    throw new KilnError("E_CONFIG", `runtime file ${path} is not valid:\n  ${problems.join("\n  ")}`, {
      hint: "it holds env, files, boot_script or user_data",
    });
  }
  return parsed.data;
}

import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type { Artifact, SourceRef } from "./types.js";

/** Label names every artefact and build resource carries. Lineage, caching and "what is this image" are read from them. */
export const LABELS = {
  /** Run id of the `kiln build` that created the resource. Every build resource carries it. */
  build: "dev.kiln.build",
  /** Bake key of the artefact. */
  key: "dev.kiln.key",
  /** Image name in the bake file. */
  image: "dev.kiln.image",
  /** Project (bake file) the image belongs to. */
  project: "dev.kiln.project",
  /** Parent artefact id (for `from:`), empty when built from a source. */
  parent: "dev.kiln.parent",
  /** The resolved source: description and id. */
  source: "dev.kiln.source",
  /** ISO time of capture. */
  created: "dev.kiln.created",
  /** Git commit of the bake file's repository, with `-dirty` when it had uncommitted changes. */
  git: "dev.kiln.git",
  /** Version of Kiln that baked it. */
  version: "dev.kiln.version",
  /** `passed`: the image declares verify checks (an artefact whose verify failed does not survive); `none`: no checks. */
  verify: "dev.kiln.verify",
  /** Short hashes of each input (see InputSummary), so a later plan can say what changed. */
  inputs: "dev.kiln.inputs",
  /** `name@version` of the driver's and provisioners' packages, space-separated. */
  plugins: "dev.kiln.plugins",
} as const;

/**
 * `kiln-channel/<project>/<image>`: the repository whose tags are an image's channels (`prod`) and their history (`prod-3`).
 * Drivers that keep artefacts elsewhere too (a registry) recognise channel tags by it.
 */
export function channelRepository(project: string, image: string): string {
  return `kiln-channel/${project}/${image}`.toLowerCase().replace(/[^a-z0-9/._-]/g, "-");
}

const run = promisify(execFile);

/** `3f2a…c1` or `3f2a…c1-dirty`; `none` outside a git repository. */
export async function gitDescription(dir: string): Promise<string> {
  try {
    const { stdout: commit } = await run("git", ["rev-parse", "HEAD"], { cwd: dir });
    const { stdout: status } = await run("git", ["status", "--porcelain", "--", "."], { cwd: dir });
    return `${commit.trim()}${status.trim() ? "-dirty" : ""}`;
  } catch {
    return "none";
  }
}

export interface ProvenanceInput {
  runId: string;
  project: string;
  image: string;
  key: string;
  parent: Artifact | undefined;
  source: SourceRef;
  git: string;
  version: string;
  /** Whether the image declares verify checks (an artefact that failed them is removed, so its existence means they passed). */
  verified: boolean;
  /** `name@version` of the plugin packages that baked it. */
  plugins: string[];
}

/** The `dev.kiln.*` labels of an artefact. */
export function provenanceLabels(input: ProvenanceInput): Record<string, string> {
  return {
    [LABELS.build]: input.runId,
    [LABELS.key]: input.key,
    [LABELS.image]: input.image,
    [LABELS.project]: input.project,
    [LABELS.parent]: input.parent?.id ?? "",
    [LABELS.source]: `${input.source.description}@${input.source.digest ?? input.source.id}`,
    [LABELS.created]: new Date().toISOString(),
    [LABELS.git]: input.git,
    [LABELS.version]: input.version,
    [LABELS.verify]: input.verified ? "passed" : "none",
    [LABELS.plugins]: input.plugins.join(" "),
  };
}

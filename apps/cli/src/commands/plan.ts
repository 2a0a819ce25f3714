import { planBuild, type PlanEntry, type PlanOptions, type Project } from "@kiln/core/engine";
import { listFlag, parseCommandArgs } from "../args.js";
import { openProject } from "../project.js";
import { shortId } from "../render/text.js";
import { forceOption } from "./build.js";

/** `kiln plan`: what `kiln build` would do per image, and why. */
export async function plan(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs("plan", argv);
  const project = await openProject(values, positionals[0]);
  return printPlan(
    project,
    {
      ...(values.only ? { only: listFlag(values.only) ?? [] } : {}),
      ...(values.except ? { except: listFlag(values.except) ?? [] } : {}),
      ...forceOption(values.force, listFlag(values["force-image"])),
    },
    values.json ?? false,
    values.matrix ?? false,
  );
}

/** One line of `kiln plan --json`. Fields are only ever added, as in the other commands' --json output. */
export interface PlanLine {
  image: string;
  action: "cached" | "bake";
  reasons: string[];
  /** null while it cannot be known: the parent is baked in this run first, or the source does not exist yet. */
  bake_key: string | null;
  artifact_id: string | null;
  /** The image it is built on. */
  from: string | null;
  cached: boolean;
  /** The wave it bakes in (0 first); null when cached: no job bakes it. */
  wave: number | null;
}

/**
 * `kiln plan --matrix`: one document for a CI matrix. `waves[n]` is what GitHub's `strategy.matrix` takes as is (an `include`
 * list, only images to bake); `wave_count` lets a workflow with a fixed number of wave jobs skip the ones it does not need,
 * since an empty matrix is an error there and expressions cannot count an array. Waves are never empty.
 */
export interface PlanMatrix {
  waves: { include: { image: string; bake_key: string | null; from: string | null }[] }[];
  wave_count: number;
  bake: number;
  cached: number;
}

export function planLine(entry: PlanEntry): PlanLine {
  return {
    image: entry.image,
    action: entry.action,
    reasons: entry.reasons,
    bake_key: entry.bakeKey ?? null,
    artifact_id: entry.artifact?.id ?? null,
    from: entry.from ?? null,
    cached: entry.action === "cached",
    wave: entry.wave ?? null,
  };
}

export function planMatrix(entries: PlanEntry[]): PlanMatrix {
  const waves: PlanMatrix["waves"] = [];
  for (const entry of entries) {
    if (entry.action !== "bake") continue;
    const wave = entry.wave ?? 0;
    for (let index = waves.length; index <= wave; index++) waves.push({ include: [] });
    waves[wave]?.include.push({ image: entry.image, bake_key: entry.bakeKey ?? null, from: entry.from ?? null });
  }
  const bake = entries.filter((entry) => entry.action === "bake").length;
  return { waves, wave_count: waves.length, bake, cached: entries.length - bake };
}

/** Prints the plan (also `kiln build --dry-run`). */
export async function printPlan(project: Project, options: Omit<PlanOptions, "project">, json: boolean, matrix = false): Promise<number> {
  const entries = await planBuild({ project, ...options });
  if (matrix) {
    process.stdout.write(`${JSON.stringify(planMatrix(entries))}\n`);
    return 0;
  }
  if (json) {
    for (const entry of entries) process.stdout.write(`${JSON.stringify(planLine(entry))}\n`);
    return 0;
  }
  const width = Math.max(...entries.map((entry) => entry.image.length));
  for (const entry of entries) {
    const what =
      entry.action === "cached"
        ? `cached (key ${entry.bakeKey?.slice(0, 12)}, artefact ${shortId(entry.artifact?.id ?? "")})`
        : `bake: ${entry.reasons.join("; ")}`;
    process.stdout.write(`${entry.image.padEnd(width)}  ${what}\n`);
  }
  const baking = entries.filter((entry) => entry.action === "bake").length;
  process.stdout.write(`\n${baking} to bake, ${entries.length - baking} cached\n`);
  return 0;
}

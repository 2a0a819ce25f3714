import { planBuild, type PlanOptions, type Project } from "@kiln/core/engine";
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
  );
}

/** Prints the plan (also `kiln build --dry-run`). */
export async function printPlan(project: Project, options: Omit<PlanOptions, "project">, json: boolean): Promise<number> {
  const entries = await planBuild({ project, ...options });
  if (json) {
    for (const entry of entries) {
      process.stdout.write(
        `${JSON.stringify({ image: entry.image, action: entry.action, reasons: entry.reasons, bake_key: entry.bakeKey ?? null, artifact_id: entry.artifact?.id ?? null })}\n`,
      );
    }
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

import { spawn } from "node:child_process";
import { KilnError, LABELS, type Artifact } from "@kiln/core";
import {
  findByRef,
  fleetCall,
  findOutdated,
  projectArtifacts,
  promote as promoteArtifact,
  prune as pruneArtifacts,
  rollback,
} from "@kiln/core/engine";
import { parseCommandArgs } from "../args.js";
import { openProject } from "../project.js";
import { lineageDot, lineageMermaid, lineageText, lineageTree } from "../render/lineage.js";
import { shortId } from "../render/text.js";

/** Exit code of `kiln outdated` when something needs a rebake (0: all current), for cron jobs and CI schedules. */
export const OUTDATED_EXIT_CODE = 3;

/** `kiln images`: the project's artefacts as a lineage tree, with keys, times, commits, tags and channels; or as a graph. */
export async function images(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs("images", argv);
  const format = imagesFormat(values.format, values.json ?? false);
  const project = await openProject(values, positionals[0]);
  const roots = lineageTree(project, await projectArtifacts(project));
  // A graph on stdout stays a valid (empty) graph; the note goes beside it.
  if (roots.length === 0 && format !== "json")
    (format === "text" ? process.stdout : process.stderr).write(`no artefacts of project ${project.name} yet: kiln build\n`);
  if (format === "json") process.stdout.write(`${JSON.stringify({ project: project.name, artifacts: roots }, null, 2)}\n`);
  else if (format === "dot") process.stdout.write(lineageDot(project.name, roots));
  else if (format === "mermaid") process.stdout.write(lineageMermaid(roots));
  else if (format === "svg") process.stdout.write(await renderSvg(lineageDot(project.name, roots)));
  else for (const line of lineageText(roots)) process.stdout.write(`${line}\n`);
  return 0;
}

const IMAGES_FORMATS = ["text", "json", "dot", "mermaid", "svg"] as const;

function imagesFormat(format: string | undefined, json: boolean): (typeof IMAGES_FORMATS)[number] {
  if (format === undefined) return json ? "json" : "text";
  const known = IMAGES_FORMATS.find((candidate) => candidate === format);
  if (!known)
    throw new KilnError("E_CONFIG", `kiln images: unknown --format "${format}"`, { hint: `use one of ${IMAGES_FORMATS.join(", ")}` });
  if (json && known !== "json") throw new KilnError("E_CONFIG", `kiln images: --json and --format ${format} contradict each other`);
  return known;
}

/** Graphviz's `dot` turns the graph into SVG; it is a host tool, not a dependency, so say how to get it. */
function renderSvg(dotSource: string): Promise<string> {
  return new Promise((resolve, reject) => {
    // Bounded: a wedged dot must fail the command, not hang a CI job.
    const child = spawn("dot", ["-Tsvg"], { stdio: ["pipe", "pipe", "pipe"], timeout: 60_000 });
    let svg = "";
    let errors = "";
    child.stdout.on("data", (chunk: Buffer) => (svg += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (errors += chunk.toString()));
    child.on("error", (error: NodeJS.ErrnoException) =>
      reject(
        error.code === "ENOENT"
          ? new KilnError("E_MISSING_TOOL", "--format svg needs Graphviz: dot not found on this host", {
              hint: "install it: apt-get install -y graphviz (or print the graph with --format dot or --format mermaid)",
              exitCode: 2,
            })
          : new KilnError("E_INTERNAL", `dot -Tsvg could not run: ${error.message}`, { cause: error }),
      ),
    );
    child.on("close", (code, signal) => {
      if (code === 0) resolve(svg);
      else reject(new KilnError("E_INTERNAL", `dot -Tsvg failed (${signal ?? `exit code ${code}`}): ${errors.trim()}`));
    });
    // dot may exit before reading everything (a missing binary, a crash): the close handler reports that, not EPIPE.
    child.stdin.on("error", () => {});
    child.stdin.end(dotSource);
  });
}

/** `kiln provenance <id|tag>`: the artefact's labels, then its parent's, down to the source it started from. */
export async function provenance(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs("provenance", argv);
  const ref = positionals[0];
  if (!ref) throw new KilnError("E_CONFIG", "kiln provenance needs an artefact id or tag", { hint: "kiln provenance acme/web:1.4.2" });
  const project = await openProject(values, undefined);
  const chain: Artifact[] = [];
  for (let next: string | undefined = ref; next; ) {
    const found = await findByRef(project, next);
    if (!found) {
      if (chain.length === 0)
        throw new KilnError("E_CONFIG", `no artefact "${ref}" found`, { hint: "give an artefact id or tag (kiln images lists them)" });
      break;
    }
    chain.push(found);
    next = found.labels[LABELS.parent] || undefined;
  }
  if (values.json) {
    process.stdout.write(
      `${JSON.stringify(
        chain.map((artifact) => ({ id: artifact.id, tags: artifact.tags, digests: artifact.digests ?? [], labels: artifact.labels })),
        null,
        2,
      )}\n`,
    );
    return 0;
  }
  chain.forEach((artifact, depth) => {
    const l = artifact.labels;
    const lines = [
      `${depth === 0 ? "" : "built on "}${l[LABELS.image] ?? "?"} ${artifact.id}`,
      `  baked ${l[LABELS.created] ?? "?"} by kiln ${l[LABELS.version] ?? "?"} in run ${l[LABELS.build] ?? "?"}, git ${l[LABELS.git] ?? "?"}`,
      `  bake key ${l[LABELS.key] ?? "?"}, verify ${l[LABELS.verify] ?? "?"}`,
      `  source ${l[LABELS.source] ?? "?"}`,
    ];
    if (l[LABELS.plugins]) lines.push(`  plugins ${l[LABELS.plugins]}`);
    if (artifact.tags.length) lines.push(`  tags ${artifact.tags.join(", ")}`);
    for (const digest of artifact.digests ?? []) lines.push(`  stored at ${digest}`);
    process.stdout.write(`${lines.join("\n")}\n`);
  });
  const origin = chain.at(-1)?.labels ?? {};
  const debootstrap = Object.entries(origin).filter(([key]) => key.startsWith("dev.kiln.debootstrap."));
  if (debootstrap.length) {
    process.stdout.write(
      `from a debootstrap tree: ${debootstrap.map(([key, value]) => `${key.slice("dev.kiln.debootstrap.".length)}=${value}`).join(", ")}\n`,
    );
  }
  return 0;
}

/** `kiln outdated [--max-age 7d]`: what needs a rebake and why. Exit 0 when all current, 3 when something is outdated. */
export async function outdated(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs("outdated", argv);
  const project = await openProject(values, positionals[0]);
  const entries = await findOutdated(project, { maxAge: values["max-age"] });
  if (values.json) {
    for (const entry of entries)
      process.stdout.write(
        `${JSON.stringify({
          image: entry.image,
          outdated: entry.reasons.length > 0,
          reasons: entry.reasons,
          artifact_id: entry.artifact?.id ?? null,
          because_of: entry.becauseOf ?? null,
        })}\n`,
      );
  } else {
    const width = Math.max(...entries.map((entry) => entry.image.length));
    for (const entry of entries)
      process.stdout.write(`${entry.image.padEnd(width)}  ${entry.reasons.length ? `outdated: ${entry.reasons.join("; ")}` : "current"}\n`);
  }
  return entries.some((entry) => entry.reasons.length > 0) ? OUTDATED_EXIT_CODE : 0;
}

/** `kiln promote <image> <channel> [--artifact ref] [--force]`, or `--rollback`. */
export async function promote(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs("promote", argv);
  const [image, channel] = positionals;
  if (!image || !channel) throw new KilnError("E_CONFIG", "kiln promote needs an image and a channel", { hint: "kiln promote web prod" });
  if (!/^[a-z0-9][a-z0-9_.-]*$/.test(channel))
    throw new KilnError("E_CONFIG", `channel "${channel}" must be lowercase letters, digits, _, . or -`);
  const project = await openProject(values, undefined);
  if (values.rollback) {
    const result = await rollback(project, image, channel);
    process.stdout.write(`${image}: ${channel} rolled back from ${shortId(result.from.id)} to ${shortId(result.artifact.id)}\n`);
    return 0;
  }
  const result = await promoteArtifact(project, image, channel, {
    ...(values.artifact ? { artifact: values.artifact } : {}),
    ...(values.force ? { force: true } : {}),
  });
  process.stdout.write(
    `${image}: ${channel} → ${shortId(result.artifact.id)}${result.previous ? ` (was ${shortId(result.previous.id)})` : ""}\n`,
  );
  return 0;
}

/** `kiln prune --keep N [--dry-run]`. */
export async function prune(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs("prune", argv);
  const keep = Number(values.keep ?? "3");
  if (!Number.isInteger(keep) || keep < 0) throw new KilnError("E_CONFIG", `--keep must be a whole number ≥ 0, not "${values.keep}"`);
  const project = await openProject(values, positionals[0]);
  // Ctrl-C stops between removals (a prune may remove fifty AMIs), never halfway through one.
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => controller.abort(new KilnError("E_INTERRUPTED", `interrupted by ${signal}`));
  process.once("SIGINT", onSignal);
  let result: Awaited<ReturnType<typeof pruneArtifacts>>;
  try {
    result = await pruneArtifacts(project, keep, { dryRun: values["dry-run"] ?? false, call: fleetCall(project, controller.signal) });
  } finally {
    process.off("SIGINT", onSignal);
  }
  for (const artifact of result.removed)
    process.stdout.write(`${values["dry-run"] ? "would remove" : "removed"} ${artifact.image} ${shortId(artifact.id)}\n`);
  process.stdout.write(`${result.removed.length} ${values["dry-run"] ? "to remove" : "removed"}, ${result.kept} kept\n`);
  return 0;
}

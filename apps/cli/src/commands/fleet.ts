import { KilnError, LABELS, type Artifact } from "@kiln/core";
import {
  channelsOf,
  findByRef,
  fleetCall,
  findOutdated,
  projectArtifacts,
  promote as promoteArtifact,
  prune as pruneArtifacts,
  rollback,
  type Project,
} from "@kiln/core/engine";
import { parseCommandArgs } from "../args.js";
import { openProject } from "../project.js";
import { shortId } from "../render/text.js";

/** Exit code of `kiln outdated` when something needs a rebake (0: all current), for cron jobs and CI schedules. */
export const OUTDATED_EXIT_CODE = 3;

/** `kiln images`: the project's artefacts as a lineage tree, with keys, times, commits, tags and channels. */
export async function images(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs("images", argv);
  const project = await openProject(values, positionals[0]);
  const byImage = await projectArtifacts(project);
  const all = [...byImage.entries()].flatMap(([image, artifacts]) => artifacts.map((artifact) => ({ image, artifact })));
  if (values.json) {
    for (const { image, artifact } of all) process.stdout.write(`${JSON.stringify(describe(project, image, artifact))}\n`);
    return 0;
  }
  const ids = new Set(all.map(({ artifact }) => artifact.id));
  const children = (parent: string) => all.filter(({ artifact }) => artifact.labels[LABELS.parent] === parent);
  const print = (entry: { image: string; artifact: Artifact }, depth: number) => {
    const d = describe(project, entry.image, entry.artifact);
    const extras = [d.tags.length ? `tags: ${d.tags.join(", ")}` : "", d.channels.length ? `channels: ${d.channels.join(", ")}` : ""]
      .filter(Boolean)
      .join("  ");
    process.stdout.write(
      `${"  ".repeat(depth)}${depth ? "└─ " : ""}${d.image}  ${shortId(d.id)}  key ${d.key.slice(0, 12)}  ${d.created.slice(0, 16).replace("T", " ")}  git ${d.git.slice(0, 12)}${extras ? `  ${extras}` : ""}\n`,
    );
    for (const child of children(entry.artifact.id)) print(child, depth + 1);
  };
  const roots = all.filter(({ artifact }) => !ids.has(artifact.labels[LABELS.parent] ?? ""));
  for (const root of roots) print(root, 0);
  if (all.length === 0) process.stdout.write(`no artefacts of project ${project.name} yet: kiln build\n`);
  return 0;
}

function describe(project: Project, image: string, artifact: Artifact) {
  const repo = "kiln-channel/";
  return {
    image,
    id: artifact.id,
    key: artifact.labels[LABELS.key] ?? "",
    parent: artifact.labels[LABELS.parent] || null,
    created: artifact.labels[LABELS.created] ?? artifact.created ?? "",
    git: artifact.labels[LABELS.git] ?? "",
    source: artifact.labels[LABELS.source] ?? "",
    tags: artifact.tags.filter((tag) => !tag.startsWith(repo)),
    channels: channelsOf(project, image, artifact),
  };
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
        chain.map((artifact) => ({ id: artifact.id, tags: artifact.tags, labels: artifact.labels })),
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
        `${JSON.stringify({ image: entry.image, outdated: entry.reasons.length > 0, reasons: entry.reasons, artifact_id: entry.artifact?.id ?? null })}\n`,
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

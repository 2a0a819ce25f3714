import type { ImageSpec, Project } from "./config/load.js";
import { parseDuration } from "./duration.js";
import { KilnError } from "./errors.js";
import { fleetCall, findLatest, newest } from "./image-inputs.js";
import { planBuild } from "./plan.js";
import { channelRepository as channelRepositoryOf, LABELS } from "./provenance.js";
import type { Artifact, FleetCall } from "./types.js";

/** Every artefact of a project's images, per image name, newest first. */
export async function projectArtifacts(project: Project, call: FleetCall = fleetCall(project)): Promise<Map<string, Artifact[]>> {
  const byImage = new Map<string, Artifact[]>();
  for (const image of project.images) {
    const found = await image.driver.findArtifacts(
      { labels: { [LABELS.image]: image.name, [LABELS.project]: project.name } },
      image.driverOptions,
      call,
    );
    byImage.set(image.name, sortNewestFirst(found));
  }
  return byImage;
}

export function sortNewestFirst(artifacts: Artifact[]): Artifact[] {
  const created = (artifact: Artifact) => artifact.labels[LABELS.created] ?? artifact.created ?? "";
  return [...artifacts].sort((a, b) => created(b).localeCompare(created(a)));
}

export interface OutdatedEntry {
  image: string;
  artifact?: Artifact;
  /** Empty when the image is current. */
  reasons: string[];
  /**
   * The parent this image is outdated because of: a rebake of an outdated image rebakes everything built on it, so its
   * children (and theirs) are outdated too. `reasons` then ends with `<parent> is outdated`, followed by the parent's own
   * reasons in parentheses when this image has none of its own.
   */
  becauseOf?: string;
}

/**
 * Which images need a rebake: no artefact yet, the parent has a newer artefact, the source or another input changed
 * (its bake key no longer matches), the newest artefact is older than `maxAge` (scheduled security rebakes), or the parent
 * is outdated (see `becauseOf`). Entries come in `project.images` order, parents first.
 */
export async function findOutdated(
  project: Project,
  options: { maxAge?: string | undefined; call?: FleetCall } = {},
): Promise<OutdatedEntry[]> {
  const maxAgeMs = options.maxAge === undefined ? undefined : parseDuration(ageToDuration(options.maxAge));
  const call = options.call ?? fleetCall(project);
  const plan = new Map((await planBuild({ project, signal: call.signal })).map((entry) => [entry.image, entry]));
  const latest = new Map<string, Artifact | undefined>();
  const entries: OutdatedEntry[] = [];
  /** Per image, the reasons found on the image itself (not inherited from its parent), to explain its children. */
  const ownReasons = new Map<string, string[]>();
  for (const image of project.images) {
    const artifact = await findLatest(project.name, image, call);
    latest.set(image.name, artifact);
    const reasons: string[] = [];
    if (!artifact) reasons.push("no artefact");
    else {
      const parentLatest = image.from === undefined ? undefined : latest.get(image.from);
      if (parentLatest && artifact.labels[LABELS.parent] !== parentLatest.id) {
        reasons.push(`parent ${image.from} has a newer artefact (${short(artifact.labels[LABELS.parent])} → ${short(parentLatest.id)})`);
      }
      const planned = plan.get(image.name);
      if (planned?.action === "bake" && planned.artifact?.id === artifact.id) {
        reasons.push(...planned.reasons.filter((reason) => !reason.startsWith("parent")));
      }
      const created = Date.parse(artifact.labels[LABELS.created] ?? artifact.created ?? "");
      if (maxAgeMs !== undefined && Number.isFinite(created) && Date.now() - created > maxAgeMs) {
        reasons.push(`older than ${options.maxAge} (baked ${new Date(created).toISOString().slice(0, 16).replace("T", " ")})`);
      }
    }
    ownReasons.set(image.name, [...reasons]);
    // Parents come first in project.images, so the parent's entry (with its inherited cause) is already complete.
    const parent = image.from === undefined ? undefined : entries.find((entry) => entry.image === image.from);
    let becauseOf: string | undefined;
    if (parent && parent.reasons.length > 0) {
      // The parent's own line has the details; repeat them only when they are the whole story of this image.
      const parentOwn = ownReasons.get(parent.image) ?? [];
      const details = parentOwn.length > 0 ? parentOwn.join("; ") : `because of ${parent.becauseOf}`;
      reasons.push(reasons.length > 0 ? `${parent.image} is outdated` : `${parent.image} is outdated (${details})`);
      becauseOf = parent.image;
    }
    entries.push({ image: image.name, ...(artifact ? { artifact } : {}), reasons, ...(becauseOf ? { becauseOf } : {}) });
  }
  return entries;
}

/** `7d` and `2w` on top of the usual durations. */
function ageToDuration(age: string): string {
  const match = /^(\d+)([dw])$/.exec(age);
  if (!match) return age;
  return `${Number(match[1]) * (match[2] === "w" ? 168 : 24)}h`;
}

/**
 * The outdated images and everything built on them, in waves: each wave depends only on earlier ones. `outdated` may list
 * just the images outdated on their own or, as `findOutdated` reports them, their descendants too: the waves are the same.
 */
export function rebakeWaves(project: Project, outdated: string[]): string[][] {
  const selected = new Set(outdated);
  for (const image of project.images) if (image.from !== undefined && selected.has(image.from)) selected.add(image.name);
  const depth = new Map<string, number>();
  const waves: string[][] = [];
  for (const image of project.images) {
    if (!selected.has(image.name)) continue;
    const level = image.from !== undefined && selected.has(image.from) ? (depth.get(image.from) ?? 0) + 1 : 0;
    depth.set(image.name, level);
    waves[level] = [...(waves[level] ?? []), image.name];
  }
  return waves;
}

/** `kiln-channel/<project>/<image>`: the repository whose tags are an image's channels and their history. */
export function channelRepository(project: Project, image: string): string {
  return channelRepositoryOf(project.name, image);
}

export interface ChannelState {
  channel: string;
  current?: Artifact;
  /** Promotions in order, oldest first: `<channel>-<n>` tags. */
  history: { n: number; artifact: Artifact }[];
}

export async function channelState(project: Project, image: ImageSpec, channel: string, artifacts: Artifact[]): Promise<ChannelState> {
  const repo = channelRepository(project, image.name);
  const current = artifacts.find((artifact) => artifact.tags.includes(`${repo}:${channel}`));
  const history = artifacts
    .flatMap((artifact) => artifact.tags.map((tag) => ({ tag, artifact })))
    .flatMap(({ tag, artifact }) => {
      const match = new RegExp(`^${escapeRegExp(repo)}:${escapeRegExp(channel)}-(\\d+)$`).exec(tag);
      return match ? [{ n: Number(match[1]), artifact }] : [];
    })
    .sort((a, b) => a.n - b.n);
  return { channel, ...(current ? { current } : {}), history };
}

/** Channels an artefact is on (`prod`, `staging`), from its channel tags. */
export function channelsOf(project: Project, image: string, artifact: Artifact): string[] {
  const repo = `${channelRepository(project, image)}:`;
  return artifact.tags.filter((tag) => tag.startsWith(repo) && !/-\d+$/.test(tag)).map((tag) => tag.slice(repo.length));
}

/**
 * Points `channel` at an artefact (by default the image's newest) and records the promotion as `<channel>-<n>`. Refuses an
 * artefact that has no passed verify unless `force`.
 */
export async function promote(
  project: Project,
  imageName: string,
  channel: string,
  options: { artifact?: string; force?: boolean; call?: FleetCall } = {},
): Promise<{ artifact: Artifact; previous?: Artifact }> {
  const image = requireImage(project, imageName);
  const call = options.call ?? fleetCall(project);
  const artifacts = (await projectArtifacts(project, call)).get(image.name) ?? [];
  const target = options.artifact
    ? (await image.driver.findArtifacts({ ref: options.artifact }, image.driverOptions, call))[0]
    : newest(artifacts);
  if (!target)
    throw new KilnError("E_CONFIG", `no artefact of image "${imageName}" to promote`, {
      hint: `bake it first: kiln build --only ${imageName}`,
    });
  if (target.labels[LABELS.verify] !== "passed" && !options.force) {
    throw new KilnError("E_CONFIG", `artefact ${short(target.id)} of "${imageName}" has no passed verify`, {
      hint: "add verify checks to the image and bake again, or pass --force to promote it anyway",
    });
  }
  const state = await channelState(project, image, channel, artifacts);
  const repo = channelRepository(project, image.name);
  const next = (state.history.at(-1)?.n ?? 0) + 1;
  await image.driver.tag(target, `${repo}:${channel}-${next}`, image.driverOptions, call);
  await image.driver.tag(target, `${repo}:${channel}`, image.driverOptions, call);
  return { artifact: target, ...(state.current ? { previous: state.current } : {}) };
}

/** Points `channel` back at the artefact promoted before the current one. */
export async function rollback(
  project: Project,
  imageName: string,
  channel: string,
  call: FleetCall = fleetCall(project),
): Promise<{ artifact: Artifact; from: Artifact }> {
  const image = requireImage(project, imageName);
  const artifacts = (await projectArtifacts(project, call)).get(image.name) ?? [];
  const state = await channelState(project, image, channel, artifacts);
  if (!state.current)
    throw new KilnError("E_CONFIG", `channel "${channel}" of "${imageName}" points nowhere`, {
      hint: `promote first: kiln promote ${imageName} ${channel}`,
    });
  // The current position is the latest promotion of the current artefact; the one before it (of another artefact) is the target.
  const position = state.history.map((entry) => entry.artifact.id).lastIndexOf(state.current.id);
  const previous = state.history
    .slice(0, Math.max(position, 0))
    .reverse()
    .find((entry) => entry.artifact.id !== state.current?.id);
  if (!previous) throw new KilnError("E_CONFIG", `channel "${channel}" of "${imageName}" has no earlier artefact to roll back to`);
  const repo = channelRepository(project, image.name);
  await image.driver.tag(previous.artifact, `${repo}:${channel}`, image.driverOptions, call);
  // Record the rollback as a promotion, so the history says what the channel pointed at, in order.
  await image.driver.tag(previous.artifact, `${repo}:${channel}-${(state.history.at(-1)?.n ?? 0) + 1}`, image.driverOptions, call);
  return { artifact: previous.artifact, from: state.current };
}

/**
 * Removes old untagged artefacts of each image beyond the newest `keep`. Never removes one that carries a tag (versions,
 * channels, channel history) or that another kept artefact is built on.
 */
export async function prune(
  project: Project,
  keep: number,
  options: { dryRun?: boolean; call?: FleetCall } = {},
): Promise<{ removed: Artifact[]; kept: number }> {
  const call = options.call ?? fleetCall(project);
  const byImage = await projectArtifacts(project, call);
  const all = [...byImage.values()].flat();
  const parents = new Set(all.map((artifact) => artifact.labels[LABELS.parent]).filter(Boolean));
  const removed: Artifact[] = [];
  for (const image of project.images) {
    const artifacts = byImage.get(image.name) ?? [];
    for (const artifact of artifacts.slice(keep)) {
      if (artifact.tags.length > 0 || parents.has(artifact.id)) continue;
      // Between removals, not during one: Ctrl-C stops a long prune without leaving an artefact half removed.
      if (call.signal.aborted) throw new KilnError("E_INTERRUPTED", `prune interrupted after removing ${removed.length} artefact(s)`);
      if (!options.dryRun) await image.driver.remove(artifact, image.driverOptions, call);
      removed.push(artifact);
    }
  }
  return { removed, kept: all.length - removed.length };
}

function requireImage(project: Project, name: string): ImageSpec {
  const image = project.images.find((candidate) => candidate.name === name);
  if (!image)
    throw new KilnError("E_CONFIG", `no image named "${name}"`, { hint: `images: ${project.images.map((item) => item.name).join(", ")}` });
  return image;
}

function short(id: string | undefined): string {
  return (id ?? "").replace(/^sha256:/, "").slice(0, 12) || "none";
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

import type Docker from "dockerode";
import { channelRepository, KilnError, LABELS, type Artifact, type Logger, type SourceRef } from "@kiln/core";
import { isNotFound, splitTag } from "./engine.js";
import { dockerLogin, type Manifest, RegistryClient, type RegistryAuth } from "./registry.js";

/**
 * Artefacts in a registry: what lets every machine share one bake cache, one lineage and one set of channels.
 *
 * Layout under the `registry` option (`host[:port]/namespace`), one repository per image, `<namespace>/<project>/<image>`:
 * - `key-<bake key>`: the cache entry. Looking a key up is one manifest request, on any registry (tags are the one lookup every
 *   registry has; OCI referrers and annotation queries are not served by distribution 2.8, ECR or Docker Hub alike).
 * - `<channel>` and `<channel>-<n>`: the image's channels and their history, as `kiln promote` moves them.
 * The bake key is content-addressed, so a key tag is never moved: the first run to publish a key wins, and a later one keeps its
 * artefact local (see publish()).
 */
export interface RegistryPlace {
  host: string;
  namespace: string;
  client: RegistryClient;
  auth: RegistryAuth | undefined;
}

export interface RegistryOptions {
  registry?: string | undefined;
  registry_auth?: RegistryAuth | undefined;
}

/** Whether a tag is Kiln's cache entry (`key-<bake key>`), not a name a person gave the image. */
export const isKeyTag = (tag: string) => /^key-[0-9a-f]{64}$/.test(tag);

/** One client per registry and login for the driver's life: tokens are reused across calls. */
export function registries(): (opts: RegistryOptions | undefined) => Promise<RegistryPlace | undefined> {
  const open = new Map<string, Promise<RegistryPlace>>();
  return (opts) => {
    if (!opts?.registry) return Promise.resolve(undefined);
    const { registry, registry_auth: given } = opts;
    const id = `${registry}\u0000${given?.username ?? ""}\u0000${given?.password ?? ""}`;
    let place = open.get(id);
    if (!place) {
      place = (async () => {
        const slash = registry.indexOf("/");
        const host = slash < 0 ? registry : registry.slice(0, slash);
        const auth = given ?? (await dockerLogin(host));
        return { host, namespace: slash < 0 ? "" : registry.slice(slash + 1), client: new RegistryClient(host, auth), auth };
      })();
      open.set(id, place);
    }
    return place;
  };
}

/** `<namespace>/<project>/<image>`, lowercased as a repository must be. */
export function repositoryOf(place: RegistryPlace, project: string, image: string): string {
  const name = `${project}/${image}`.toLowerCase().replace(/[^a-z0-9/._-]/g, "-");
  return place.namespace ? `${place.namespace}/${name}` : name;
}

/** The artefact's repository and manifest in the registry, when it is there. */
function placeOf(place: RegistryPlace, artifact: Artifact): { repository: string; digest: string } | undefined {
  for (const digest of artifact.digests ?? []) {
    const match = /^([^/]+)\/(.+)@(sha256:[0-9a-f]{64})$/.exec(digest);
    if (match && match[1] === place.host) return { repository: match[2] as string, digest: match[3] as string };
  }
  return undefined;
}

/**
 * Artefacts in the registry whose labels match. Only queries that name the project and the image reach the registry (they say
 * which repository to read); a bake-key lookup is one tag request, a listing reads each tag's manifest and each image's config.
 */
export async function findInRegistry(place: RegistryPlace, wanted: Record<string, string | undefined>): Promise<Artifact[]> {
  const project = wanted[LABELS.project];
  const image = wanted[LABELS.image];
  if (!project || !image) return [];
  const repository = repositoryOf(place, project, image);
  const key = wanted[LABELS.key];
  const tags = key ? [`key-${key}`] : await place.client.tags(repository);
  const byDigest = new Map<string, { manifest: Manifest; tags: string[] }>();
  for (const tag of tags) {
    const manifest = await place.client.manifest(repository, tag);
    if (!manifest) continue;
    const entry = byDigest.get(manifest.digest) ?? { manifest, tags: [] };
    entry.tags.push(tag);
    byDigest.set(manifest.digest, entry);
  }
  const channels = channelRepository(project, image);
  const found: Artifact[] = [];
  for (const { manifest, tags: onIt } of byDigest.values()) {
    const config = await place.client.config(repository, manifest.config);
    const labels = config.config?.Labels ?? {};
    if (!Object.entries(wanted).every(([name, value]) => (value === undefined ? name in labels : labels[name] === value))) continue;
    found.push({
      id: manifest.config,
      driver: "docker",
      image: labels[LABELS.image] ?? image,
      tags: onIt.filter((tag) => !isKeyTag(tag)).map((tag) => `${channels}:${tag}`),
      labels,
      ...(config.created ? { created: config.created } : {}),
      digests: [`${place.host}/${repository}@${manifest.digest}`],
    });
  }
  return found;
}

/** Artefacts found in several places (engines, a registry) as one list by id, with every place's tags and digests. */
export function mergeArtifacts(lists: Artifact[][]): Artifact[] {
  const merged = new Map<string, Artifact>();
  for (const artifact of lists.flat()) {
    const known = merged.get(artifact.id);
    if (!known) {
      merged.set(artifact.id, artifact);
      continue;
    }
    const digests = [...new Set([...(known.digests ?? []), ...(artifact.digests ?? [])])];
    merged.set(artifact.id, { ...known, tags: [...new Set([...known.tags, ...artifact.tags])], ...(digests.length ? { digests } : {}) });
  }
  return [...merged.values()];
}

/**
 * With a registry, the channels are the registry's: a channel tag in an engine may be stale (another machine promoted since),
 * so it is dropped from what the engine reports.
 */
export function withoutLocalChannels(local: Artifact[], project: string | undefined, image: string | undefined): Artifact[] {
  if (!project || !image) return local;
  const channels = `${channelRepository(project, image)}:`;
  return local.map((artifact) => ({ ...artifact, tags: artifact.tags.filter((tag) => !tag.startsWith(channels)) }));
}

/** Whether the engine holds the image. */
export async function isLocal(api: Docker, id: string): Promise<boolean> {
  return api
    .getImage(id)
    .inspect()
    .then(
      () => true,
      (error) => (isNotFound(error) ? false : Promise.reject(error)),
    );
}

/**
 * Makes the artefact's image present in this engine: pulled by digest from the registry it was published to when this machine
 * did not bake it (a child baked on a parent another machine published, a cached artefact to tag).
 */
export async function ensureLocal(api: Docker, place: RegistryPlace | undefined, artifact: Artifact, log?: Logger): Promise<void> {
  if (await isLocal(api, artifact.id)) return;
  const where = place ? placeOf(place, artifact) : undefined;
  if (!place || !where) {
    throw new KilnError("E_SOURCE", `image ${artifact.id.slice(0, 19)} of "${artifact.image}" is not in this engine`, {
      hint: "bake it here (kiln build --force-image …), or set `registry:` so machines share artefacts",
    });
  }
  const reference = `${place.host}/${where.repository}@${where.digest}`;
  log?.info(`pulling ${reference}`);
  await followProgress(api, await api.pull(reference, authOption(place)), `pull ${reference}`);
}

/**
 * Pushes a verified artefact to the registry under its key tag (and the image's tags that name this registry host), and returns
 * it with its repository digest. A key already published with the same image is left as is (a cached bake, a retry); one
 * published with another image (another machine baked the same key meanwhile) is not overwritten: the first publish wins, so
 * every machine that already pulled the key keeps agreeing with the registry.
 */
export async function publish(api: Docker, place: RegistryPlace, artifact: Artifact, log: Logger): Promise<Artifact> {
  const project = artifact.labels[LABELS.project];
  const image = artifact.labels[LABELS.image];
  const key = artifact.labels[LABELS.key];
  if (!project || !image || !key) return artifact;
  const repository = repositoryOf(place, project, image);
  const keyTag = `key-${key}`;
  const published = await place.client.manifest(repository, keyTag);
  if (published && published.config !== artifact.id) {
    log.warn(
      `bake key ${key.slice(0, 12)} of "${image}" is already in ${place.host}/${repository} as another image ` +
        `(${published.config.slice(7, 19)}), baked by another run: that one stays the shared cache entry; this one stays on this machine`,
    );
    return artifact;
  }
  if (!published) await pushTag(api, place, artifact.id, `${place.host}/${repository}`, keyTag);
  for (const tag of artifact.tags.filter((candidate) => candidate.startsWith(`${place.host}/`))) {
    const at = tag.lastIndexOf(":");
    await pushTag(api, place, artifact.id, tag.slice(0, at), tag.slice(at + 1));
  }
  const manifest = published ?? (await place.client.manifest(repository, keyTag));
  if (!manifest) throw new KilnError("E_CAPTURE", `registry ${place.host}: ${repository}:${keyTag} is missing right after its push`);
  const digest = `${place.host}/${repository}@${manifest.digest}`;
  return { ...artifact, digests: [...new Set([...(artifact.digests ?? []), digest])] };
}

/**
 * A debootstrap base another machine built and shared (`<namespace>/kiln-debootstrap/<suite>:<recipe key>`), or undefined. Its
 * image id is the one it has on the machine that built it, so the bake keys of images on it agree on every machine.
 */
export async function sharedBase(
  place: RegistryPlace,
  tag: string,
): Promise<{ id: string; pull: string; labels: Record<string, string> } | undefined> {
  const { repo, tag: version } = splitTag(tag);
  const repository = place.namespace ? `${place.namespace}/${repo}` : repo;
  const manifest = await place.client.manifest(repository, version);
  if (!manifest) return undefined;
  const config = await place.client.config(repository, manifest.config);
  return { id: manifest.config, pull: `${place.host}/${repository}@${manifest.digest}`, labels: config.config?.Labels ?? {} };
}

/** Shares a debootstrap base this machine built, unless the registry has one for the recipe already (the first one stays). */
export async function shareBase(api: Docker, place: RegistryPlace, id: string, tag: string): Promise<void> {
  const { repo, tag: version } = splitTag(tag);
  const repository = place.namespace ? `${place.namespace}/${repo}` : repo;
  if (await place.client.manifest(repository, version)) return;
  await pushTag(api, place, id, `${place.host}/${repository}`, version);
  // The push needed a local tag; the base keeps its own (kiln-debootstrap/…), so removing this one only untags it.
  await api.getImage(`${place.host}/${repository}:${version}`).remove();
}

/** Points a channel tag at the artefact in the registry: the manifest is copied under the tag, no layer moves. */
export async function tagInRegistry(place: RegistryPlace, artifact: Artifact, reference: string): Promise<boolean> {
  const project = artifact.labels[LABELS.project];
  const image = artifact.labels[LABELS.image];
  if (!project || !image) return false;
  const channels = `${channelRepository(project, image)}:`;
  if (!reference.startsWith(channels)) return false;
  const repository = repositoryOf(place, project, image);
  const key = artifact.labels[LABELS.key];
  const where = placeOf(place, artifact);
  const manifest = await place.client.manifest(repository, where?.digest ?? `key-${key}`);
  if (!manifest || manifest.config !== artifact.id) return false;
  const tag = reference.slice(channels.length);
  // A history entry (`prod-4`) is written once: another machine's promotion that took the number first is not overwritten.
  // The registry has no compare-and-swap, so this narrows the race to the moment between the two requests.
  const taken = /-\d+$/.test(tag) ? await place.client.manifest(repository, tag) : undefined;
  if (taken && taken.digest !== manifest.digest) {
    throw new KilnError("E_CONFIG", `${place.host}/${repository}:${tag} was just written by another promotion`, {
      hint: "run kiln promote again: it reads the channel's history anew",
    });
  }
  await place.client.putManifest(repository, tag, manifest);
  return true;
}

/** Deletes the artefact's manifest from the registry; false when the registry does not allow deletes. */
export async function removeFromRegistry(place: RegistryPlace, artifact: Artifact): Promise<boolean> {
  const where = placeOf(place, artifact);
  return where ? place.client.deleteManifest(where.repository, where.digest) : true;
}

async function pushTag(api: Docker, place: RegistryPlace, id: string, repo: string, tag: string): Promise<void> {
  await api.getImage(id).tag({ repo, tag });
  const pushed = api.getImage(`${repo}:${tag}`);
  await followProgress(api, await pushed.push({ tag, ...authOption(place) }), `push ${repo}:${tag}`);
}

/** `host[:port]/repo[:tag][@digest]` split, for references that name a registry host (not Docker Hub's short names). */
function parseReference(reference: string): { host: string; repository: string; reference: string } | undefined {
  const [name = "", digest] = reference.split("@");
  const { repo, tag } = splitTag(name);
  const slash = repo.indexOf("/");
  const host = repo.slice(0, slash);
  if (slash < 0 || !(host.includes(".") || host.includes(":") || host === "localhost")) return undefined;
  return { host, repository: repo.slice(slash + 1), reference: digest ?? tag };
}

/**
 * A source image that is not in this engine, resolved from its registry without pulling it: `kiln plan` on a fresh machine can
 * still compute bake keys (the image id is the manifest's config digest, the same one every engine gives it once pulled).
 */
export async function sourceInRegistry(reference: string): Promise<SourceRef | undefined> {
  const parsed = parseReference(reference);
  if (!parsed) return undefined;
  try {
    const client = new RegistryClient(parsed.host, await dockerLogin(parsed.host));
    const manifest = await client.manifest(parsed.repository, parsed.reference);
    if (!manifest) return undefined;
    return { id: manifest.config, digest: `${parsed.host}/${parsed.repository}@${manifest.digest}`, description: reference };
  } catch {
    return undefined;
  }
}

/** The engine's login for pulling `reference`, from Docker's own login (the engine does not read the client's config.json). */
export async function pullAuth(reference: string): Promise<ReturnType<typeof authOption>> {
  const host = parseReference(reference)?.host;
  return host ? authOption({ host, auth: await dockerLogin(host) }) : {};
}

/** What the engine needs to log in for a push or pull (its X-Registry-Auth): the engine does not read the client's config.json. */
function authOption({ host, auth }: Pick<RegistryPlace, "host" | "auth">): {
  authconfig?: { username: string; password: string; serveraddress: string };
} {
  return auth ? { authconfig: { ...auth, serveraddress: host } } : {};
}

/**
 * Waits for a pull, push or load stream and returns its events; the engine reports failures inside the stream, not as an HTTP
 * status.
 */
export async function followProgress(api: Docker, stream: NodeJS.ReadableStream, what: string): Promise<ProgressEvent[]> {
  return new Promise((resolve, reject) =>
    api.modem.followProgress(stream, (error: Error | null, events: ProgressEvent[]) => {
      const failed = error?.message ?? events?.find((event) => event.error || event.errorDetail);
      if (!failed) return resolve(events);
      const message = typeof failed === "string" ? failed : String(failed.error ?? JSON.stringify(failed.errorDetail));
      reject(new KilnError("E_SOURCE", `cannot ${what}: ${message}`, { hint: "check the registry and your login to it" }));
    }),
  );
}

/** One event of an engine's progress stream. */
export type ProgressEvent = Record<string, unknown> & { error?: string; errorDetail?: unknown };

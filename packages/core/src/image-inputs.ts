import { bakeKey, inputSummary, parseInputSummary, type InputSummary } from "./bake-key.js";
import type { ImageSpec, Project } from "./config/load.js";
import { LABELS } from "./provenance.js";
import type { Artifact, BakeContext, FleetCall, SourceRef, VariableValue } from "./types.js";

export interface ImageInputs {
  source: SourceRef;
  key: string;
  summary: InputSummary;
}

/** Resolves an image's source and fingerprints its provisioners: everything the bake key is made of. */
export async function resolveInputs(ctx: BakeContext, image: ImageSpec, variables: Record<string, VariableValue>): Promise<ImageInputs> {
  const source = await image.driver.resolveSource(ctx, image.driverOptions);
  const provision = await Promise.all(
    image.provision.map(async (item) => ({
      name: item.name,
      options: item.options,
      fingerprint: await item.provisioner.fingerprint(ctx, item.options),
    })),
  );
  const input = {
    driver: image.driverName,
    driverOptions: image.driver.bakeKeyOptions ? image.driver.bakeKeyOptions(image.driverOptions) : image.driverOptions,
    source,
    provision,
    verify: image.verify,
    plugins: image.plugins,
  };
  return { source, key: bakeKey(input, variables), summary: inputSummary(input, variables) };
}

/**
 * The newest artefact of this image with this bake key, if any: baking again would produce the same image. The image and project
 * are asked too, so a driver whose artefacts live in a registry looks in that image's repository only.
 */
export async function findCached(project: string, image: ImageSpec, key: string, call: FleetCall): Promise<Artifact | undefined> {
  const labels = { [LABELS.key]: key, [LABELS.image]: image.name, [LABELS.project]: project };
  return newest(await image.driver.findArtifacts({ labels }, image.driverOptions, call));
}

/** The newest artefact baked for this image of this project. */
export async function findLatest(project: string, image: ImageSpec, call: FleetCall): Promise<Artifact | undefined> {
  return newest(
    await image.driver.findArtifacts({ labels: { [LABELS.image]: image.name, [LABELS.project]: project } }, image.driverOptions, call),
  );
}

export function newest(artifacts: Artifact[]): Artifact | undefined {
  const created = (artifact: Artifact) => artifact.labels[LABELS.created] ?? artifact.created ?? "";
  return [...artifacts].sort((a, b) => created(b).localeCompare(created(a)))[0];
}

export function previousSummary(artifact: Artifact | undefined): InputSummary | undefined {
  return parseInputSummary(artifact?.labels[LABELS.inputs]);
}

/**
 * The artefact with this id or tag, asked of every driver the project uses — once per distinct set of driver options, since
 * options say where artefacts live (an EC2 region).
 */
export async function findByRef(project: Project, ref: string, call: FleetCall = fleetCall(project)): Promise<Artifact | undefined> {
  const asked = new Set<string>();
  for (const image of project.images) {
    const where = `${image.driverName} ${JSON.stringify(image.driverOptions)}`;
    if (asked.has(where)) continue;
    asked.add(where);
    const [artifact] = await image.driver.findArtifacts({ ref }, image.driverOptions, call);
    if (artifact) return artifact;
  }
  return undefined;
}

/** A fleet call for commands outside a bake: the project's logger, and a signal that never aborts unless one is given. */
export function fleetCall(project: Pick<Project, "log">, signal: AbortSignal = new AbortController().signal): FleetCall {
  return { signal, log: project.log };
}

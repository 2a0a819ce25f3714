import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { copyFile, mkdir, readdir, readFile, rename, rm, stat, unlink, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { KilnError } from "../errors.js";
import type { Artifact, ArtifactFile, ArtifactQuery } from "../types.js";
import { withFileLock } from "./lock.js";

/** A file to take into the store: moved in (copied when it lives on another file system). */
export interface ArtifactFileInput {
  /** Where the file is now. */
  from: string;
  /** Its name in the store. Default: the name it has now. */
  name?: string;
  /** `tar`, `tar.gz`, `qcow2`, `box`, … */
  format: string;
}

export interface NewArtifact {
  /** Image name in the bake file. */
  image: string;
  labels: Record<string, string>;
  files: ArtifactFileInput[];
  /** Default: 16 random hex digits. */
  id?: string;
}

/** One artefact's sidecar record, as stored in `<dir>/<id>/record.json`. */
interface ArtifactRecord {
  version: 1;
  id: string;
  driver: string;
  image: string;
  labels: Record<string, string>;
  tags: string[];
  created: string;
  /** Files by their name inside the artefact's directory. */
  files: (Omit<ArtifactFile, "path"> & { name: string })[];
}

export interface ArtifactStore {
  /** The store's directory: one subdirectory per artefact holding its files and `record.json`. */
  readonly dir: string;
  /** Takes the files in, checksums them and publishes the artefact at once (a half-added one is never seen). */
  add(artifact: NewArtifact): Promise<Artifact>;
  get(id: string): Promise<Artifact | undefined>;
  /** Artefacts whose labels match (`undefined` values only require the label), or the one with this id or tag. */
  find(query: ArtifactQuery): Promise<Artifact[]>;
  /** Points `tag` at the artefact, taking it from any other (a tag is a moving reference). */
  tag(id: string, tag: string): Promise<void>;
  /** Removes the artefact and its files. Removing one that is gone is not an error. */
  remove(id: string): Promise<void>;
}

const RECORD = "record.json";

/**
 * A local artefact store for platforms without labels of their own (LXC images, Vagrant boxes, chroot tarballs): a
 * directory with one subdirectory per artefact, holding its files and a sidecar record (labels, tags, files, sizes,
 * checksums). Records are replaced atomically (write, then rename), changes that touch several records (moving a tag) hold
 * a lock, so parallel bakes and `kiln prune` never see or write a torn state. Drivers put it in their `init.stateDir`.
 */
export function artifactStore(options: { dir: string; driver: string }): ArtifactStore {
  const { dir, driver } = options;
  const locked = <T>(work: () => Promise<T>) => withFileLock(join(dir, ".lock"), work, { waitMs: 60_000 });
  const toArtifact = (record: ArtifactRecord): Artifact => ({
    id: record.id,
    driver: record.driver,
    image: record.image,
    tags: record.tags,
    labels: record.labels,
    created: record.created,
    files: record.files.map(({ name, ...file }) => ({ ...file, path: join(dir, record.id, name) })),
  });

  async function read(id: string): Promise<ArtifactRecord | undefined> {
    if (!isId(id)) return undefined;
    const text = await readFile(join(dir, id, RECORD), "utf8").catch((error: NodeJS.ErrnoException) =>
      error.code === "ENOENT" ? undefined : Promise.reject(error),
    );
    return text === undefined ? undefined : (JSON.parse(text) as ArtifactRecord);
  }

  async function all(): Promise<ArtifactRecord[]> {
    const names = await readdir(dir).catch((error: NodeJS.ErrnoException) => (error.code === "ENOENT" ? [] : Promise.reject(error)));
    const records = await Promise.all(names.filter(isId).map(read));
    return records.filter((record): record is ArtifactRecord => record !== undefined);
  }

  async function write(record: ArtifactRecord): Promise<void> {
    const target = join(dir, record.id, RECORD);
    const temporary = `${target}.${randomBytes(4).toString("hex")}.tmp`;
    await writeFile(temporary, `${JSON.stringify(record, null, 2)}\n`);
    await rename(temporary, target);
  }

  return {
    dir,

    async add(input) {
      const id = input.id ?? randomBytes(8).toString("hex");
      if (!isId(id)) throw new KilnError("E_INTERNAL", `artefact id "${id}" may only hold letters, digits, ".", "_" and "-"`);
      const names = input.files.map((file) => file.name ?? basename(file.from));
      const badName = names.find((name, index) => !isId(name) || names.indexOf(name) !== index);
      if (badName !== undefined) throw new KilnError("E_INTERNAL", `artefact file name "${badName}" must be a plain, unique file name`);
      if (await exists(join(dir, id))) throw new KilnError("E_CAPTURE", `an artefact with id ${id} already exists in ${dir}`);
      // Built under a hidden name and renamed into place: readers see the whole artefact or none of it.
      const staging = join(dir, `.adding-${id}-${randomBytes(4).toString("hex")}`);
      await mkdir(staging, { recursive: true });
      const taken: { from: string; to: string }[] = [];
      try {
        const files: ArtifactRecord["files"] = [];
        for (const [index, file] of input.files.entries()) {
          const name = names[index] as string;
          await moveFile(file.from, join(staging, name));
          taken.push({ from: file.from, to: join(staging, name) });
          files.push({ name, format: file.format, ...(await checksum(join(staging, name))) });
        }
        const record: ArtifactRecord = {
          version: 1,
          id,
          driver,
          image: input.image,
          labels: input.labels,
          tags: [],
          created: new Date().toISOString(),
          files,
        };
        await writeFile(join(staging, RECORD), `${JSON.stringify(record, null, 2)}\n`);
        await rename(staging, join(dir, id));
        return toArtifact(record);
      } catch (error) {
        // The caller's files are theirs again: a failed add must not destroy what it was given.
        for (const { from, to } of taken.reverse()) await moveFile(to, from).catch(() => {});
        await rm(staging, { recursive: true, force: true });
        if ((error as NodeJS.ErrnoException).code === "ENOTEMPTY" || (error as NodeJS.ErrnoException).code === "EEXIST") {
          throw new KilnError("E_CAPTURE", `an artefact with id ${id} already exists in ${dir}`);
        }
        throw error;
      }
    },

    async get(id) {
      const record = await read(id);
      return record && toArtifact(record);
    },

    async find(query) {
      const wanted = Object.entries(query.labels ?? {});
      const matches = (record: ArtifactRecord) =>
        wanted.every(([key, value]) => (value === undefined ? Object.hasOwn(record.labels, key) : record.labels[key] === value)) &&
        (query.ref === undefined || record.id === query.ref || record.tags.includes(query.ref));
      return (await all()).filter(matches).map(toArtifact);
    },

    async tag(id, tag) {
      await locked(async () => {
        const target = await read(id);
        if (!target) throw new KilnError("E_CONFIG", `no artefact ${id} in ${dir}`);
        for (const record of await all()) {
          if (record.id !== id && record.tags.includes(tag)) await write({ ...record, tags: record.tags.filter((item) => item !== tag) });
        }
        if (!target.tags.includes(tag)) await write({ ...target, tags: [...target.tags, tag] });
      });
    },

    async remove(id) {
      if (!isId(id)) return;
      await locked(async () => {
        // Renamed out of sight first, so a reader never sees an artefact whose files are half deleted.
        const doomed = join(dir, `.removing-${id}-${randomBytes(4).toString("hex")}`);
        try {
          await rename(join(dir, id), doomed);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
          throw error;
        }
        await rm(doomed, { recursive: true, force: true });
      });
    },
  };
}

/** Ids and file names are single path components: nothing that could climb out of the store or hide as a dotfile. */
function isId(name: string): boolean {
  return /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(name) && name !== RECORD;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function moveFile(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EXDEV") throw error;
    await copyFile(from, to);
    await unlink(from);
  }
}

async function checksum(path: string): Promise<{ size: number; sha256: string }> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return { size: (await stat(path)).size, sha256: hash.digest("hex") };
}

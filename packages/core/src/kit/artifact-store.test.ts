import { createHash } from "node:crypto";
import { access, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, isAbsolute, join, relative } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { KilnError } from "../errors.js";
import type { Artifact } from "../types.js";
import { artifactStore } from "./artifact-store.js";

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "kiln-artifact-store-test-"));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );
const sha256 = (content: string | Buffer) => createHash("sha256").update(content).digest("hex");

/** A store in a fresh temp dir, and a helper that writes an input file outside it. */
async function setup() {
  const root = await tempDir();
  const store = artifactStore({ dir: join(root, "store"), driver: "lxc" });
  const input = async (name: string, content: string | Buffer = `content of ${name}\n`) => {
    const path = join(root, "inputs", name);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, content);
    return path;
  };
  /** Adds a one-file artefact. */
  const addOne = async (id: string, labels: Record<string, string> = {}) =>
    store.add({ id, image: "web", labels, files: [{ from: await input(`${id}.tar`), format: "tar" }] });
  return { root, store, input, addOne };
}

const tagsOf = async (store: ReturnType<typeof artifactStore>, id: string) => (await store.get(id))?.tags;

describe("artifactStore add", () => {
  it("moves the files into the store and records each file's format, size and sha256", async () => {
    const { store, input } = await setup();
    const rootfs = await input("build-output.tar", "a root file system\n");
    const metadata = await input("metadata.yaml", "architecture: x86_64\n");

    const artifact = await store.add({
      id: "web-1",
      image: "web",
      labels: { "dev.kiln.image": "web" },
      files: [
        { from: rootfs, name: "rootfs.tar", format: "tar" },
        { from: metadata, format: "yaml" },
      ],
    });

    expect(artifact).toEqual({
      id: "web-1",
      driver: "lxc",
      image: "web",
      tags: [],
      labels: { "dev.kiln.image": "web" },
      created: expect.any(String),
      files: [
        { path: join(store.dir, "web-1", "rootfs.tar"), format: "tar", size: 19, sha256: sha256("a root file system\n") },
        { path: join(store.dir, "web-1", "metadata.yaml"), format: "yaml", size: 21, sha256: sha256("architecture: x86_64\n") },
      ],
    });
    expect(Number.isNaN(Date.parse(artifact.created ?? ""))).toBe(false);
    for (const file of artifact.files ?? []) {
      expect(isAbsolute(file.path)).toBe(true);
      expect(relative(store.dir, file.path).startsWith("..")).toBe(false);
    }
    expect(await readFile(join(store.dir, "web-1", "rootfs.tar"), "utf8")).toBe("a root file system\n");
    expect(await exists(rootfs)).toBe(false);
    expect(await exists(metadata)).toBe(false);
  });

  it("records the size and checksum of a binary file larger than one read chunk", async () => {
    const { store, input } = await setup();
    const content = Buffer.alloc(300_000);
    for (let index = 0; index < content.length; index += 1) content[index] = (index * 7) % 256;
    const artifact = await store.add({ image: "web", labels: {}, files: [{ from: await input("disk.qcow2", content), format: "qcow2" }] });
    expect(artifact.files).toEqual([{ path: expect.any(String), format: "qcow2", size: 300_000, sha256: sha256(content) }]);
  });

  it("gives an artefact without an id 16 random hex digits, different each time", async () => {
    const { store, input } = await setup();
    const first = await store.add({ image: "web", labels: {}, files: [{ from: await input("a.tar"), format: "tar" }] });
    const second = await store.add({ image: "web", labels: {}, files: [{ from: await input("b.tar"), format: "tar" }] });
    expect(first.id).toMatch(/^[0-9a-f]{16}$/);
    expect(second.id).toMatch(/^[0-9a-f]{16}$/);
    expect(second.id).not.toBe(first.id);
  });

  it("refuses a second artefact with an id already in the store, and keeps the first one intact", async () => {
    const { store, input, addOne } = await setup();
    const first = await addOne("web-1", { version: "1" });
    const error = await store
      .add({ id: "web-1", image: "web", labels: { version: "2" }, files: [{ from: await input("other.tar", "other"), format: "tar" }] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KilnError);
    expect(error).toMatchObject({ code: "E_CAPTURE", message: expect.stringContaining("web-1") });
    expect(await store.get("web-1")).toEqual(first);
    expect(await readFile(first.files?.[0]?.path ?? "", "utf8")).toBe("content of web-1.tar\n");
  });

  it("leaves nothing in the store when one of the files cannot be taken in", async () => {
    const { root, store, input } = await setup();
    const good = await input("good.tar");
    const files = [
      { from: good, format: "tar" },
      { from: join(root, "missing.tar"), format: "tar" },
    ];
    const error = await store.add({ id: "broken", image: "web", labels: {}, files }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "ENOENT" });
    expect(await store.get("broken")).toBeUndefined();
    expect(await store.find({})).toEqual([]);
    expect(await readdir(store.dir)).toEqual([]);
  });

  it("never shows an artefact whose files or record are still being written", async () => {
    const { store, input } = await setup();
    const big = Buffer.alloc(8 * 1024 * 1024, 1);
    const files = await Promise.all(["a", "b", "c", "d"].map(async (name) => ({ from: await input(`${name}.img`, big), format: "raw" })));
    let done = false;
    const adding = store.add({ id: "big", image: "web", labels: { kind: "big" }, files }).finally(() => {
      done = true;
    });
    const seen: (Artifact | undefined)[] = [];
    while (!done) {
      const [byId, byLabel] = await Promise.all([store.get("big"), store.find({ labels: { kind: "big" } })]);
      seen.push(byId, ...byLabel);
    }
    const added = await adding;
    seen.push(await store.get("big"));
    const visible = seen.filter((artifact): artifact is Artifact => artifact !== undefined);
    expect(visible.length).toBeGreaterThan(0);
    for (const artifact of visible) {
      expect(artifact).toEqual(added);
      for (const file of artifact.files ?? []) expect(await exists(file.path)).toBe(true);
    }
  });
});

describe("artifactStore get and find", () => {
  it("returns an artefact from a new store instance on the same directory (records are on disk)", async () => {
    const { store, addOne } = await setup();
    const added = await addOne("web-1", { role: "web" });
    const reopened = artifactStore({ dir: store.dir, driver: "lxc" });
    expect(await reopened.get("web-1")).toEqual(added);
    expect(await reopened.find({ labels: { role: "web" } })).toEqual([added]);
  });

  it("returns undefined for an unknown id, and nothing from a store whose directory does not exist yet", async () => {
    const { store, addOne } = await setup();
    expect(await store.get("web-1")).toBeUndefined();
    expect(await store.find({})).toEqual([]);
    await addOne("web-1");
    expect(await store.get("web-2")).toBeUndefined();
  });

  it("finds artefacts whose labels all match, and treats an undefined value as 'the label exists'", async () => {
    const { store, addOne } = await setup();
    await addOne("deb-web", { os: "debian", role: "web" });
    await addOne("deb-db", { os: "debian", role: "db" });
    await addOne("ubu-web", { os: "ubuntu", role: "web" });
    await addOne("bare", { os: "debian" });
    const ids = async (labels: Record<string, string | undefined>) => (await store.find({ labels })).map((artifact) => artifact.id).sort();

    expect(await ids({ os: "debian" })).toEqual(["bare", "deb-db", "deb-web"]);
    expect(await ids({ os: "debian", role: "web" })).toEqual(["deb-web"]);
    expect(await ids({ role: undefined })).toEqual(["deb-db", "deb-web", "ubu-web"]);
    expect(await ids({ os: "ubuntu", role: undefined })).toEqual(["ubu-web"]);
    expect(await ids({ os: "fedora" })).toEqual([]);
    expect(await ids({})).toEqual(["bare", "deb-db", "deb-web", "ubu-web"]);
  });

  it("finds one artefact by its id or by one of its tags, combined with labels", async () => {
    const { store, addOne } = await setup();
    const web = await addOne("web-1", { role: "web" });
    await addOne("web-2", { role: "web" });
    await store.tag("web-2", "prod");
    const ids = async (query: Parameters<typeof store.find>[0]) => (await store.find(query)).map((artifact) => artifact.id);

    expect(await store.find({ ref: "web-1" })).toEqual([web]);
    expect(await ids({ ref: "prod" })).toEqual(["web-2"]);
    expect(await ids({ ref: "prod", labels: { role: "web" } })).toEqual(["web-2"]);
    expect(await ids({ ref: "prod", labels: { role: "db" } })).toEqual([]);
    expect(await ids({ ref: "staging" })).toEqual([]);
  });
});

describe("artifactStore tag", () => {
  it("points a tag at an artefact, and moves it there from the artefact that had it, keeping that one's other tags", async () => {
    const { store, addOne } = await setup();
    await addOne("web-1");
    await addOne("web-2");
    await store.tag("web-1", "prod");
    await store.tag("web-1", "v1");
    expect(await tagsOf(store, "web-1")).toEqual(["prod", "v1"]);

    await store.tag("web-2", "prod");
    expect(await tagsOf(store, "web-1")).toEqual(["v1"]);
    expect(await tagsOf(store, "web-2")).toEqual(["prod"]);
    expect((await store.find({ ref: "prod" })).map((artifact) => artifact.id)).toEqual(["web-2"]);
  });

  it("does not list a tag twice when an artefact is tagged again", async () => {
    const { store, addOne } = await setup();
    await addOne("web-1");
    await store.tag("web-1", "prod");
    await store.tag("web-1", "prod");
    expect(await tagsOf(store, "web-1")).toEqual(["prod"]);
  });

  it("refuses to tag an artefact that is not in the store, leaving the tag where it was", async () => {
    const { store, addOne } = await setup();
    await addOne("web-1");
    await store.tag("web-1", "prod");
    const error = await store.tag("web-9", "prod").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KilnError);
    expect(error).toMatchObject({ code: "E_CONFIG", message: expect.stringContaining("web-9") });
    expect(await tagsOf(store, "web-1")).toEqual(["prod"]);
  });

  it("leaves exactly one artefact holding a tag when several tag() calls for it run in parallel", async () => {
    const { store, addOne } = await setup();
    const ids = ["web-1", "web-2", "web-3", "web-4", "web-5"];
    for (const id of ids) await addOne(id);
    await Promise.all(ids.map((id) => store.tag(id, "latest")));

    const holders = (await store.find({})).filter((artifact) => artifact.tags.includes("latest")).map((artifact) => artifact.id);
    expect(holders).toHaveLength(1);
    expect(ids).toContain(holders[0]);
    expect((await store.find({ ref: "latest" })).map((artifact) => artifact.id)).toEqual(holders);
  });

  it("keeps every tag when parallel tag() calls add different tags to the same artefact", async () => {
    const { store, addOne } = await setup();
    await addOne("web-1");
    await Promise.all(["a", "b", "c", "d"].map((tag) => store.tag("web-1", tag)));
    expect((await tagsOf(store, "web-1"))?.sort()).toEqual(["a", "b", "c", "d"]);
  });
});

describe("artifactStore remove", () => {
  it("removes the artefact with its files and leaves the others alone; removing it again is not an error", async () => {
    const { store, addOne } = await setup();
    const doomed = await addOne("web-1", { role: "web" });
    const kept = await addOne("web-2", { role: "web" });
    await store.remove("web-1");

    expect(await store.get("web-1")).toBeUndefined();
    expect(await store.find({ labels: { role: "web" } })).toEqual([kept]);
    for (const file of doomed.files ?? []) expect(await exists(file.path)).toBe(false);
    expect(await exists(join(store.dir, "web-1"))).toBe(false);
    for (const file of kept.files ?? []) expect(await exists(file.path)).toBe(true);
    // Its bytes are gone from the store's directory altogether, not just out of sight.
    const left = await readdir(store.dir, { recursive: true, withFileTypes: true });
    const files = left.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name));
    const contents = await Promise.all(files.map((file) => readFile(file, "utf8")));
    expect(contents).not.toContain("content of web-1.tar\n");
    expect(contents).toContain("content of web-2.tar\n");

    await expect(store.remove("web-1")).resolves.toBeUndefined();
    await expect(store.remove("never-existed")).resolves.toBeUndefined();
  });

  it("lets a new artefact take the id of a removed one", async () => {
    const { store, addOne } = await setup();
    await addOne("web-1", { version: "1" });
    await store.remove("web-1");
    const again = await addOne("web-1", { version: "2" });
    expect(await store.get("web-1")).toEqual(again);
  });
});

describe("artifactStore ids", () => {
  it.each(["../escape", "a/b", "/etc", ".hidden", "..", "", "record.json"])("refuses to add an artefact with id %j", async (id) => {
    const { root, store, input } = await setup();
    const file = await input("rootfs.tar");
    const error = await store.add({ id, image: "web", labels: {}, files: [{ from: file, format: "tar" }] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KilnError);
    expect(error).toMatchObject({ code: "E_INTERNAL" });
    expect(await exists(file)).toBe(true);
    expect(await readdir(root)).toEqual(["inputs"]);
  });

  it("does not read or remove a directory outside the store through an id that climbs out of it", async () => {
    const { root, store, addOne } = await setup();
    const planted = await addOne("outside");
    // An artefact directory with a valid record, next to the store rather than in it.
    await mkdir(join(root, "elsewhere"), { recursive: true });
    await writeFile(join(root, "elsewhere", "record.json"), await readFile(join(store.dir, "outside", "record.json")));

    expect(await store.get("../elsewhere")).toBeUndefined();
    expect(await store.find({ ref: "../elsewhere" })).toEqual([]);
    await store.remove("../elsewhere");
    await store.remove(`../store/outside`);
    expect(await exists(join(root, "elsewhere", "record.json"))).toBe(true);
    expect(await store.get("outside")).toEqual(planted);
    await expect(store.tag("../elsewhere", "prod")).rejects.toMatchObject({ code: "E_CONFIG" });
  });
});

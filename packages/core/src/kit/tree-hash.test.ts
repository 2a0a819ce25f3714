import { createHash } from "node:crypto";
import { chmod, chown, mkdir, mkdtemp, rename, rm, symlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { DEFAULT_EXCLUDES, hashTree } from "./tree-hash.js";

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "kiln-tree-hash-test-"));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** What to put at a path: file content (mode 0644), a file with a mode, a symlink, or an empty directory. */
type Entry = string | { content: string; mode: number } | { link: string } | { dir: true };

/** Writes the entries under `root` (in the order given) with explicit modes, so the umask of the test run does not matter. */
async function writeTree(root: string, entries: Record<string, Entry>): Promise<string> {
  await mkdir(root, { recursive: true });
  for (const [path, entry] of Object.entries(entries)) {
    const target = join(root, path);
    await mkdir(dirname(target), { recursive: true });
    if (typeof entry === "string") {
      await writeFile(target, entry);
      await chmod(target, 0o644);
    } else if ("content" in entry) {
      await writeFile(target, entry.content);
      await chmod(target, entry.mode);
    } else if ("link" in entry) {
      await symlink(entry.link, target);
    } else {
      await mkdir(target, { recursive: true });
    }
  }
  return root;
}

const PLAYBOOK: Record<string, Entry> = {
  "site.yml": "- hosts: all\n  roles: [web]\n",
  "roles/web/tasks/main.yml": "- apt: name=nginx\n",
  "roles/web/files/run.sh": { content: "#!/bin/sh\nexec nginx\n", mode: 0o755 },
  "roles/web/templates/site.conf.j2": "server { listen {{ port }}; }\n",
};

/** A playbook tree in a fresh directory, plus `more` entries. */
async function playbook(more: Record<string, Entry> = {}, name = "playbook"): Promise<string> {
  return writeTree(join(await tempDir(), name), { ...PLAYBOOK, ...more });
}

describe("hashTree", () => {
  it("gives two copies of the same tree in different directories the same hex sha256", async () => {
    const first = await playbook({}, "checkout-a");
    // The same entries written in the opposite order, under another name.
    const second = await writeTree(join(await tempDir(), "somewhere", "else"), Object.fromEntries(Object.entries(PLAYBOOK).reverse()));
    const hash = await hashTree(first);
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(await hashTree(second)).toBe(hash);
  });

  it("ignores umask-like mode differences of files and directories (0644, 0664, 0600 hash the same)", async () => {
    const hashes: string[] = [];
    for (const [fileMode, dirMode] of [
      [0o644, 0o755],
      [0o664, 0o775],
      [0o600, 0o700],
      [0o640, 0o750],
    ] as const) {
      const root = await playbook({ "vars.yml": { content: "port: 80\n", mode: fileMode } });
      await chmod(join(root, "roles", "web"), dirMode);
      hashes.push(await hashTree(root));
    }
    expect(new Set(hashes).size).toBe(1);
  });

  it("ignores group and other exec bits (0755 vs 0775 vs 0700) but not the owner's exec bit", async () => {
    const withMode = async (mode: number) => hashTree(await playbook({ "bin/tool": { content: "#!/bin/sh\n", mode } }));
    const executable = await withMode(0o755);
    expect(await withMode(0o775)).toBe(executable);
    expect(await withMode(0o700)).toBe(executable);
    expect(await withMode(0o744)).toBe(executable);

    const plain = await withMode(0o644);
    expect(plain).not.toBe(executable);
    expect(await withMode(0o655)).toBe(plain);
  });

  it("ignores owners and modification times", async () => {
    const root = await playbook();
    const before = await hashTree(root);
    await utimes(join(root, "site.yml"), new Date("2001-01-01T00:00:00Z"), new Date("2001-01-01T00:00:00Z"));
    await chown(join(root, "roles", "web", "tasks", "main.yml"), 1234, 5678);
    expect(await hashTree(root)).toBe(before);
  });

  it("changes when a file's content changes, even to content of the same size", async () => {
    const root = await playbook();
    const before = await hashTree(root);
    await writeFile(join(root, "roles", "web", "tasks", "main.yml"), "- apt: name=apache\n");
    const edited = await hashTree(root);
    expect(edited).not.toBe(before);
    await writeFile(join(root, "roles", "web", "tasks", "main.yml"), "- apt: name=nginy\n");
    expect(await hashTree(root)).not.toBe(edited);
  });

  it("keeps file boundaries: content that spells out the next entry's header does not collide with that entry", async () => {
    const twoFiles = await writeTree(join(await tempDir(), "two"), { a: "X", b: "Y" });
    const oneFile = await writeTree(join(await tempDir(), "one"), { a: "Xfile\0b\0-\0Y" });
    expect(await hashTree(oneFile)).not.toBe(await hashTree(twoFiles));
  });

  it("changes when a file is renamed or moved to another directory", async () => {
    const root = await playbook();
    const before = await hashTree(root);
    await rename(join(root, "site.yml"), join(root, "main.yml"));
    const renamed = await hashTree(root);
    expect(renamed).not.toBe(before);
    await mkdir(join(root, "plays"));
    await rename(join(root, "main.yml"), join(root, "plays", "main.yml"));
    expect(await hashTree(root)).not.toBe(renamed);
  });

  it("changes when an empty directory is added", async () => {
    const root = await playbook();
    const before = await hashTree(root);
    await mkdir(join(root, "roles", "web", "handlers"));
    expect(await hashTree(root)).not.toBe(before);
  });

  it("counts a symlink by its target: retargeting it changes the hash, changing the file it points to does not", async () => {
    const outside = await tempDir();
    await writeFile(join(outside, "a.yml"), "a\n");
    await writeFile(join(outside, "b.yml"), "b\n");
    const root = await playbook({ "group_vars/all.yml": { link: join(outside, "a.yml") } });
    const before = await hashTree(root);

    await writeFile(join(outside, "a.yml"), "changed\n");
    expect(await hashTree(root)).toBe(before);

    await rm(join(root, "group_vars", "all.yml"));
    await symlink(join(outside, "b.yml"), join(root, "group_vars", "all.yml"));
    expect(await hashTree(root)).not.toBe(before);
  });

  it("tells a symlink from a file holding the link's target as content", async () => {
    const asLink = await playbook({ current: { link: "site.yml" } });
    const asFile = await playbook({ current: "site.yml" });
    expect(await hashTree(asLink)).not.toBe(await hashTree(asFile));
  });

  it("leaves out version control, node_modules and Ansible retry files by default, at any depth", async () => {
    expect(DEFAULT_EXCLUDES).toEqual(expect.arrayContaining([".git", "node_modules", "*.retry"]));
    const clean = await hashTree(await playbook());
    const cluttered = await playbook({
      ".git/HEAD": "ref: refs/heads/main\n",
      ".git/objects/ab/cdef": "blob",
      "roles/web/.git": "gitdir: ../../.git/modules/web\n",
      "node_modules/left-pad/index.js": "module.exports = 1;\n",
      "roles/web/files/node_modules/x/package.json": "{}\n",
      "site.retry": "host1\n",
      "roles/web/site.retry": "host2\n",
    });
    expect(await hashTree(cluttered)).toBe(clean);
  });

  it("applies a custom pattern without '/' to entry names at any depth, and replaces the default excludes", async () => {
    const options = { exclude: ["*.log"] };
    const clean = await hashTree(await playbook(), options);
    expect(await hashTree(await playbook({ "debug.log": "x\n", "roles/web/files/access.log": "y\n" }), options)).toBe(clean);
    expect(await hashTree(await playbook({ "roles/web/files/access.log.1": "y\n" }), options)).not.toBe(clean);
    // .git is no longer left out: the defaults were replaced, not extended.
    expect(await hashTree(await playbook({ ".git/HEAD": "ref\n" }), options)).not.toBe(clean);
    expect(await hashTree(await playbook({ ".git/HEAD": "ref\n", "x.log": "" }), { exclude: [...DEFAULT_EXCLUDES, "*.log"] })).toBe(
      await hashTree(await playbook(), { exclude: [...DEFAULT_EXCLUDES, "*.log"] }),
    );
  });

  it("applies a custom pattern with '/' to the path from the root only", async () => {
    const options = { exclude: ["roles/*/tests"] };
    const clean = await hashTree(await playbook(), options);
    expect(await hashTree(await playbook({ "roles/web/tests/test.yml": "- hosts: localhost\n" }), options)).toBe(clean);
    expect(await hashTree(await playbook({ "tests/test.yml": "- hosts: localhost\n" }), options)).not.toBe(clean);
    expect(await hashTree(await playbook({ "roles/web/files/tests/t.yml": "x\n" }), options)).not.toBe(clean);
  });

  it("counts everything with an empty exclude list", async () => {
    const clean = await hashTree(await playbook(), { exclude: [] });
    expect(await hashTree(await playbook({ "node_modules/x.js": "" }), { exclude: [] })).not.toBe(clean);
    expect(await hashTree(await playbook({ "site.retry": "" }), { exclude: [] })).not.toBe(clean);
  });

  it("throws ENOENT for a missing root, also when it is not the first one", async () => {
    const root = await playbook();
    await expect(hashTree(join(root, "missing"))).rejects.toMatchObject({ code: "ENOENT" });
    await expect(hashTree([root, join(root, "missing")])).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("hashes several roots in the order given, each as a whole", async () => {
    const dir = await tempDir();
    const a = await writeTree(join(dir, "a"), { "one.yml": "1\n" });
    const b = await writeTree(join(dir, "b"), { "two.yml": "2\n" });
    const both = await hashTree([a, b]);
    expect(await hashTree([a, b])).toBe(both);
    expect(await hashTree([b, a])).not.toBe(both);
    expect(await hashTree(a)).not.toBe(both);
    expect(await hashTree(a)).toBe(await hashTree([a]));

    // The same entries split differently between the roots are a different input.
    const merged = await writeTree(join(dir, "merged"), { "one.yml": "1\n", "two.yml": "2\n" });
    const empty = await writeTree(join(dir, "empty"), {});
    expect(await hashTree([merged, empty])).not.toBe(both);
  });

  it("hashes single files as roots, by content and exec bit, not by their names", async () => {
    const dir = await tempDir();
    await writeTree(dir, {
      "x/script.sh": { content: "echo hi\n", mode: 0o755 },
      "y/other-name.sh": { content: "echo hi\n", mode: 0o700 },
    });
    await writeTree(dir, { "z/script.sh": { content: "echo hi\n", mode: 0o644 } });
    const hash = await hashTree(join(dir, "x", "script.sh"));
    expect(await hashTree(join(dir, "y", "other-name.sh"))).toBe(hash);
    expect(await hashTree(join(dir, "z", "script.sh"))).not.toBe(hash);
  });

  it("resolves relative roots from the cwd option", async () => {
    const dir = await tempDir();
    const root = await writeTree(join(dir, "ansible"), PLAYBOOK);
    expect(await hashTree("ansible", { cwd: dir })).toBe(await hashTree(root));
    const absolute = await hashTree([join(root, "roles"), join(root, "site.yml")]);
    expect(await hashTree(["ansible/roles", "ansible/site.yml"], { cwd: dir })).toBe(absolute);
  });
});

describe("hashTree on a tree of many files", () => {
  it("is the documented sha256 of headers and contents in byte order, however the files are read", async () => {
    // More files than are read ahead, and files over the read-whole limit streamed between them: the order must not change.
    const entries: Record<string, Entry> = {};
    for (let index = 0; index < 40; index++) entries[`d${index % 3}/f${String(index).padStart(2, "0")}`] = `content ${index}\n`;
    entries["d1/big"] = "x".repeat(3 * 1024 * 1024);
    entries["d2/run.sh"] = { content: "#!/bin/sh\n", mode: 0o755 };
    const root = await writeTree(join(await tempDir(), "tree"), entries);

    const expected = createHash("sha256").update("root 0\0").update("dir\0\0");
    for (const dir of ["d0", "d1", "d2"]) {
      expected.update(`dir\0${dir}\0`);
      const names = Object.keys(entries)
        .filter((path) => path.startsWith(`${dir}/`))
        .map((path) => path.slice(dir.length + 1))
        .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      for (const name of names) {
        const entry = entries[`${dir}/${name}`] as string | { content: string; mode: number };
        const content = typeof entry === "string" ? entry : entry.content;
        const executable = typeof entry === "string" ? "-" : "x";
        expected.update(`file\0${dir}/${name}\0${executable}\0${Buffer.byteLength(content)}\0`).update(content);
      }
    }
    expect(await hashTree(root)).toBe(expected.digest("hex"));
  });
});

import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join, posix } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KilnError } from "@kiln/core";
import { createTestContext, testPluginInit } from "@kiln/test-suite";
import { file, parseMode, targetPath, type FileOptions } from "./file.js";

const provisioner = file(testPluginInit("provisioner", "file"));
const validate = async (input: unknown) => provisioner.schema["~standard"].validate(input);
const messages = async (input: unknown) => ((await validate(input)).issues ?? []).map((issue) => issue.message).join("; ");

describe("file options", () => {
  it("accepts uploads, downloads and inline content", async () => {
    for (const input of [
      { source: "./site/", destination: "/var/www/" },
      { sources: ["a.conf", "conf.d"], destination: "/etc/app/", mode: "0640" },
      { source: "app.service", destination: "/etc/systemd/system/app.service", mode: 0o644 },
      { content: "hello\n", destination: "/etc/motd", mode: "644" },
      { source: "/var/log/app/", destination: "logs/", direction: "download" },
    ]) {
      expect((await validate(input)).issues, JSON.stringify(input)).toBeUndefined();
    }
  });

  it("requires exactly one of source, sources and content, and a destination", async () => {
    expect(await messages({ destination: "/x" })).toMatch(/exactly one of source, sources or content/);
    expect(await messages({ source: "a", content: "b", destination: "/x" })).toMatch(/exactly one/);
    expect((await validate({ source: "a" })).issues).toBeDefined();
  });

  it("rejects combinations that cannot work", async () => {
    expect(await messages({ sources: ["a", "b"], destination: "/etc/app" })).toMatch(/destination must be a directory ending in \//);
    expect(await messages({ content: "x", destination: "/etc/" })).toMatch(/content needs a file destination/);
    expect(await messages({ content: "x", destination: "out.txt", direction: "download" })).toMatch(/content can only be uploaded/);
    expect(await messages({ source: "/etc/hosts", destination: "hosts", direction: "download", mode: "0600" })).toMatch(
      /mode applies to uploads only/,
    );
    expect(await messages({ source: "a", destination: "relative/path" })).toMatch(/must be absolute/);
    expect(await messages({ source: "relative", destination: "out", direction: "download" })).toMatch(/must be absolute/);
    expect((await validate({ source: "a", destination: "/x", direction: "sideways" })).issues).toBeDefined();
    expect((await validate({ source: "a", destination: "/x", owner: "root" })).issues).toBeDefined();
  });

  it("reads modes as octal and catches YAML's decimal 0644", async () => {
    expect(await messages({ content: "x", destination: "/x", mode: "rw-r--r--" })).toMatch(/octal/);
    expect(await messages({ content: "x", destination: "/x", mode: 644 })).toMatch(/this number is decimal/);
    expect(parseMode("0644")).toBe(0o644);
    expect(parseMode("4755")).toBe(0o4755);
    expect(parseMode("0o600")).toBe(0o600);
    expect(parseMode(0o755)).toBe(0o755);
    expect(parseMode(undefined)).toBeUndefined();
  });
});

describe("targetPath (Packer's slash rules)", () => {
  const remote = (source: string, isDirectory: boolean, destination: string) =>
    targetPath(source, isDirectory, destination, posix.join, basename);
  it("copies a directory without trailing slash as a directory, with one its contents", () => {
    expect(remote("./site", true, "/var/www")).toBe("/var/www/site");
    expect(remote("./site", true, "/var/www/")).toBe("/var/www/site");
    expect(remote("./site/", true, "/var/www/")).toBe("/var/www");
    expect(remote("./site/", true, "/var/www")).toBe("/var/www");
    expect(remote("site/", true, "/")).toBe("/");
  });
  it("puts a file inside a destination ending in /, else exactly at it", () => {
    expect(remote("conf/app.conf", false, "/etc/app/")).toBe("/etc/app/app.conf");
    expect(remote("conf/app.conf", false, "/etc/app.conf")).toBe("/etc/app.conf");
  });
});

describe("file fingerprint", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "kiln-file-unit-"));
    await mkdir(join(dir, "site/css"), { recursive: true });
    await writeFile(join(dir, "site/index.html"), "<h1>hello</h1>");
    await writeFile(join(dir, "site/css/main.css"), "body{}");
    await writeFile(join(dir, "motd"), "welcome");
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const fingerprint = async (opts: FileOptions, cwd = dir) => {
    await using test = createTestContext({ cwd });
    return provisioner.fingerprint(test.ctx, opts);
  };
  const site: FileOptions = { source: "./site/", destination: "/var/www/" };

  it("is stable, and changes when any uploaded file's content changes", async () => {
    const before = await fingerprint(site);
    expect(before).toMatch(/^[0-9a-f]{64}$/);
    expect(await fingerprint(site)).toBe(before);
    await writeFile(join(dir, "site/css/main.css"), "body{color:red}");
    expect(await fingerprint(site)).not.toBe(before);
    await writeFile(join(dir, "site/css/main.css"), "body{}");
    expect(await fingerprint(site)).toBe(before);
  });

  it("changes when a file is added, made executable, or a link target changes", async () => {
    const before = await fingerprint(site);
    await writeFile(join(dir, "site/new.txt"), "");
    const added = await fingerprint(site);
    expect(added).not.toBe(before);
    await rm(join(dir, "site/new.txt"));
    await chmod(join(dir, "site/index.html"), 0o755);
    expect(await fingerprint(site)).not.toBe(before);
    await chmod(join(dir, "site/index.html"), 0o644);
    await symlink("index.html", join(dir, "site/link"));
    const linked = await fingerprint(site);
    await rm(join(dir, "site/link"));
    await symlink("css", join(dir, "site/link"));
    expect(await fingerprint(site)).not.toBe(linked);
  });

  it("is the same on a machine with another umask (group-writable files), as the upload is", async () => {
    const before = await fingerprint(site);
    await chmod(join(dir, "site/index.html"), 0o664);
    await chmod(join(dir, "site/css"), 0o775);
    expect(await fingerprint(site)).toBe(before);
  });

  it("covers every source and the options, not where the bake directory is", async () => {
    const both: FileOptions = { sources: ["site", "motd"], destination: "/srv/" };
    const before = await fingerprint(both);
    await writeFile(join(dir, "motd"), "changed");
    expect(await fingerprint(both)).not.toBe(before);
    expect(await fingerprint({ source: "./site", destination: "/var/www/" })).not.toBe(await fingerprint(site));
    expect(await fingerprint({ content: "a", destination: "/etc/motd" })).not.toBe(
      await fingerprint({ content: "b", destination: "/etc/motd" }),
    );

    const copy = await mkdtemp(join(tmpdir(), "kiln-file-unit-copy-"));
    try {
      await writeFile(join(copy, "motd"), "changed");
      const single: FileOptions = { source: "motd", destination: "/etc/motd" };
      expect(await fingerprint(single, copy)).toBe(await fingerprint(single));
    } finally {
      await rm(copy, { recursive: true, force: true });
    }
  });

  it("does not read local files for downloads", async () => {
    const opts: FileOptions = { source: "/var/log/nothing-here", destination: "missing/locally", direction: "download" };
    expect(await fingerprint(opts)).toMatch(/^[0-9a-f]{64}$/);
  });

  it("reports a missing local source as E_CONFIG with the path", async () => {
    const error = await fingerprint({ sources: ["site", "nope/app.conf"], destination: "/etc/" }).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(KilnError);
    expect(error).toMatchObject({ code: "E_CONFIG", exitCode: 2 });
    expect((error as KilnError).message).toContain("nope/app.conf");
    expect((error as KilnError).hint).toMatch(/relative to the bake file's directory/);
  });
});

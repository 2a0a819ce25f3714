import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { describe, expect, it, onTestFinished } from "vitest";
import { KilnError } from "../errors.js";
import { extractDownload } from "./tar.js";

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "kiln-tar-"));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** What a machine sends for a download: `tar -c` of the path by its name, from a process that may exit before it is read. */
function archiveOf(dir: string, name: string): Readable {
  return spawn("tar", ["-C", dir, "-cf", "-", name], { stdio: ["ignore", "pipe", "ignore"] }).stdout;
}

describe("extractDownload", () => {
  it("puts a file exactly at its destination, every byte, once tar has written it", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, "big.bin"), Buffer.alloc(3 * 1024 * 1024, 7));
    await extractDownload(archiveOf(dir, "big.bin"), "/somewhere/big.bin", join(dir, "out/renamed.bin"), false);
    expect(await readFile(join(dir, "out/renamed.bin"))).toEqual(Buffer.alloc(3 * 1024 * 1024, 7));
  });

  it("puts a directory's contents into the destination", async () => {
    const dir = await tempDir();
    await mkdir(join(dir, "tree/sub"), { recursive: true });
    await writeFile(join(dir, "tree/sub/two.txt"), "two");
    await extractDownload(archiveOf(dir, "tree"), "/srv/tree", join(dir, "back"), true);
    expect(await readFile(join(dir, "back/sub/two.txt"), "utf8")).toBe("two");
  });

  it("finishes when tar has read the whole archive, though the stream ends later (nsenter, lxc-attach hold the pipe open)", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, "late.txt"), "complete");
    const late = new PassThrough();
    const archive = archiveOf(dir, "late.txt");
    archive.pipe(late, { end: false });
    archive.on("end", () => setTimeout(() => late.end(), 300));
    await extractDownload(late, "/srv/late.txt", join(dir, "out/late.txt"), false);
    expect(await readFile(join(dir, "out/late.txt"), "utf8")).toBe("complete");
  });

  it("fails with tar's words when what arrives is not an archive", async () => {
    const dir = await tempDir();
    const error = await extractDownload(Readable.from([Buffer.from("not a tar archive")]), "/x", join(dir, "x"), false).catch(
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(KilnError);
    expect((error as KilnError).message).toMatch(/does not look like a tar archive/);
  });
});

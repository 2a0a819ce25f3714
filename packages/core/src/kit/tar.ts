import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rename, rm } from "node:fs/promises";
import { dirname, join, posix } from "node:path";
import { PassThrough, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { KilnError } from "../errors.js";

/**
 * Extracts a tar stream into `dir` (created if missing) with GNU tar, and returns once tar has exited — every file written.
 * (tar-fs over tar-stream 3 can finish before the last file is on disk.) Owners and setuid/setgid bits are not taken from the
 * archive: what comes off a build machine is the caller's, with ordinary permissions.
 */
export async function extractTar(archive: Readable, dir: string, options: { strip?: number } = {}): Promise<void> {
  // Taken up at once: a child process's stdout that nobody reads before the child exits loses its data.
  const held = archive.pipe(new PassThrough());
  await mkdir(dir, { recursive: true });
  const args = [
    "-x",
    "-f",
    "-",
    "-C",
    dir,
    "--no-same-owner",
    "--no-same-permissions",
    ...(options.strip ? [`--strip-components=${options.strip}`] : []),
  ];
  const tar = spawn("tar", args, { stdio: ["pipe", "ignore", "pipe"] });
  let stderr = "";
  tar.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve, reject) => {
    tar.on("error", (error: NodeJS.ErrnoException) => reject(error.code === "ENOENT" ? missingTar() : error));
    tar.on("close", resolve);
  });
  const fed = pipeline(held, tar.stdin).then(
    () => undefined,
    (error: NodeJS.ErrnoException) => error,
  );
  const code = await exited;
  const feedError = await fed;
  if (code !== 0) throw new KilnError("E_PROVISION", `extracting into ${dir} failed: ${stderr.trim() || `tar exited with ${code}`}`);
  // tar exits 0 once it has read the archive's end blocks. A sender that keeps its end of the pipe open a little longer (nsenter
  // and lxc-attach fork the command and hold the pipe until they exit) then meets a closed pipe: the archive was complete.
  if (feedError && feedError.code !== "EPIPE" && feedError.code !== "ERR_STREAM_PREMATURE_CLOSE") throw feedError;
}

/**
 * A directory's contents as a tar stream packed by the host's GNU tar (several times faster than packing in JavaScript on trees of
 * many files), owned by root inside, as a container's upload would be. `packed` settles when tar has exited: it rejects when tar
 * could not read the tree (the stream then ends early, so the receiver's error may come first).
 */
export function packTree(dir: string): { archive: Readable; packed: Promise<void> } {
  const tar = spawn("tar", ["--numeric-owner", "--owner=0", "--group=0", "-C", dir, "-cf", "-", "."], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  tar.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const packed = new Promise<void>((resolve, reject) => {
    tar.on("error", (error: NodeJS.ErrnoException) => reject(error.code === "ENOENT" ? missingTar() : error));
    tar.on("close", (code) =>
      code === 0 ? resolve() : reject(new KilnError("E_PROVISION", `cannot pack ${dir}: ${stderr.trim() || `tar exited with ${code}`}`)),
    );
  });
  packed.catch(() => {}); // the caller awaits it after the upload; a failure must not surface earlier as an unhandled rejection
  return { archive: tar.stdout, packed };
}

function missingTar(): KilnError {
  return new KilnError("E_MISSING_TOOL", "tar not found", { hint: "install it: apt-get install -y tar" });
}

/**
 * Puts what a machine sent as a tar stream of `from` (a file or a directory, archived by its name) at `to`: a directory's
 * contents into `to`, a file exactly at `to` (extracted beside it, then moved into place).
 */
export async function extractDownload(archive: Readable, from: string, to: string, isDirectory: boolean): Promise<void> {
  // Taken up at once: a child process's stdout that nobody reads before the child exits loses its data.
  const held = archive.pipe(new PassThrough());
  if (isDirectory) return extractTar(held, to, { strip: 1 });
  await mkdir(dirname(to), { recursive: true });
  const staging = await mkdtemp(join(dirname(to), ".kiln-download-"));
  try {
    await extractTar(held, staging);
    await rename(join(staging, posix.basename(from)), to);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

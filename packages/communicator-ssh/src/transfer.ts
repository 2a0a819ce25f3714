import { createReadStream, createWriteStream } from "node:fs";
import { chmod, lstat, mkdir, readdir, readlink, symlink } from "node:fs/promises";
import { dirname, join, posix } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { FileEntryWithStats, SFTPWrapper, Stats } from "ssh2";
import { KilnError } from "@kiln/core";

/** SFTP status codes (draft-ietf-secsh-filexfer) that deserve their own words. */
const NO_SUCH_FILE = 2;
const PERMISSION_DENIED = 3;

/** A file lands exactly at `to`; a directory's contents land inside `to` (created if missing); a stream becomes one file. */
export async function uploadPath(sftp: SFTPWrapper, from: string | Readable, to: string, mode: number | undefined): Promise<void> {
  try {
    if (typeof from !== "string") return await putStream(sftp, from, to, mode ?? 0o644);
    const info = await lstat(from);
    if (info.isDirectory()) {
      await makeRemoteDirs(sftp, to);
      await putTree(sftp, from, to);
    } else {
      await putStream(sftp, createReadStream(from), to, mode ?? info.mode & 0o7777);
    }
  } catch (error) {
    throw transferError("upload", typeof from === "string" ? from : "stream", to, error);
  }
}

/** A file is written exactly at `to`; a directory's contents go into `to` (created if missing). Modes are kept. */
export async function downloadPath(sftp: SFTPWrapper, from: string, to: string): Promise<void> {
  try {
    const info = await call<Stats>((done) => sftp.stat(from, done));
    if (info.isDirectory()) {
      await mkdir(to, { recursive: true });
      await getTree(sftp, from, to);
    } else {
      await mkdir(dirname(to), { recursive: true });
      await getFile(sftp, from, to, info.mode & 0o7777);
    }
  } catch (error) {
    throw transferError("download", from, to, error);
  }
}

async function putStream(sftp: SFTPWrapper, from: Readable, to: string, mode: number): Promise<void> {
  await makeRemoteDirs(sftp, posix.dirname(to));
  await pipeline(from, sftp.createWriteStream(to, { mode }));
  // The server applies its umask at creation, and an existing file keeps its old mode: set it explicitly.
  await call((done) => sftp.chmod(to, mode, done));
}

async function putTree(sftp: SFTPWrapper, local: string, remote: string): Promise<void> {
  for (const entry of await readdir(local, { withFileTypes: true })) {
    const source = join(local, entry.name);
    const target = posix.join(remote, entry.name);
    if (entry.isDirectory()) {
      await makeRemoteDirs(sftp, target);
      const dirMode = (await lstat(source)).mode & 0o7777;
      await call((done) => sftp.chmod(target, dirMode, done));
      await putTree(sftp, source, target);
    } else if (entry.isSymbolicLink()) {
      const pointsTo = await readlink(source);
      await call((done) => sftp.unlink(target, done)).catch(() => {});
      await call((done) => sftp.symlink(pointsTo, target, done));
    } else if (entry.isFile()) {
      await putStream(sftp, createReadStream(source), target, (await lstat(source)).mode & 0o7777);
    }
  }
}

async function getTree(sftp: SFTPWrapper, remote: string, local: string): Promise<void> {
  const entries = await call<FileEntryWithStats[]>((done) => sftp.readdir(remote, done));
  for (const entry of entries) {
    const source = posix.join(remote, entry.filename);
    const target = join(local, entry.filename);
    if (entry.attrs.isDirectory()) {
      await mkdir(target, { recursive: true, mode: entry.attrs.mode & 0o7777 });
      await getTree(sftp, source, target);
    } else if (entry.attrs.isSymbolicLink()) {
      await symlink(await call<string>((done) => sftp.readlink(source, done)), target).catch(() => {});
    } else if (entry.attrs.isFile()) {
      await getFile(sftp, source, target, entry.attrs.mode & 0o7777);
    }
  }
}

async function getFile(sftp: SFTPWrapper, from: string, to: string, mode: number): Promise<void> {
  await pipeline(sftp.createReadStream(from), createWriteStream(to, { mode }));
  await chmod(to, mode);
}

/** `mkdir -p` over SFTP: creates the missing parents first. */
async function makeRemoteDirs(sftp: SFTPWrapper, dir: string): Promise<void> {
  if (dir === "/" || dir === "." || dir === "") return;
  const info = await call<Stats>((done) => sftp.stat(dir, done)).catch(() => undefined);
  if (info?.isDirectory()) return;
  if (info) throw new KilnError("E_PROVISION", `${dir} exists on the machine and is not a directory`);
  await makeRemoteDirs(sftp, posix.dirname(dir));
  await call((done) => sftp.mkdir(dir, done)).catch(async (error: unknown) => {
    // Another upload may have created it meanwhile.
    const now = await call<Stats>((done) => sftp.stat(dir, done)).catch(() => undefined);
    if (!now?.isDirectory()) throw error;
  });
}

function transferError(verb: "upload" | "download", from: string, to: string, error: unknown): KilnError {
  if (error instanceof KilnError) return error;
  const code = (error as { code?: unknown }).code;
  const reason =
    code === PERMISSION_DENIED ? "permission denied" : code === NO_SUCH_FILE ? "no such file or directory" : (error as Error).message;
  return new KilnError("E_PROVISION", `cannot ${verb} ${from} to ${to}: ${reason}`, {
    ...(code === PERMISSION_DENIED
      ? {
          hint: "SFTP runs as the login user: use a directory that user can write (e.g. /tmp) and move the files with sudo, or log in as root",
        }
      : {}),
    cause: error,
  });
}

/** Adapts an ssh2 callback API to a promise. */
function call<T = void>(start: (done: (error: Error | null | undefined, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => start((error, value) => (error ? reject(error) : resolve(value))));
}

import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";

export interface FileLockOptions {
  /** How long to keep waiting for another holder, in ms. Default 15 minutes (a debootstrap build). */
  waitMs?: number | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * Runs `work` while holding an exclusive lock named by `path` (it need not exist; the lock is `<path>.lock`), shared by every
 * process on this machine: parallel bakes and test workers wait for one another instead of building the same thing twice. A
 * holder that died leaves a stale lock, taken over after 30 s.
 */
export async function withFileLock<T>(path: string, work: () => Promise<T>, options: FileLockOptions = {}): Promise<T> {
  // Loaded on first use: proper-lockfile brings graceful-fs, which patches `fs` as it loads, and most commands never lock.
  const { default: lockfile } = await import("proper-lockfile");
  await mkdir(dirname(path), { recursive: true });
  const waitMs = options.waitMs ?? 15 * 60_000;
  const started = Date.now();
  let release: (() => Promise<void>) | undefined;
  while (!release) {
    options.signal?.throwIfAborted();
    try {
      release = await lockfile.lock(path, { stale: 30_000, realpath: false });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ELOCKED" || Date.now() - started > waitMs) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
  try {
    return await work();
  } finally {
    await release().catch(() => {});
  }
}

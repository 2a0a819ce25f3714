import { constants } from "node:fs";
import { open } from "node:fs/promises";
import { KilnError } from "../errors.js";
import type { BakeContext } from "../types.js";

export interface ReadHostFileOptions {
  /** Names the file in messages: `shell: script`, `chef: encrypted_data_bag_secret_path`. */
  what: string;
  /** Larger files are refused before they are read (a script of /dev/zero must not fill memory). */
  maxBytes: number;
  /** How to fix a missing file. */
  hint?: string;
}

/**
 * Reads a host file an option names, through `ctx.hostPath()` (so it must be inside the project or allowed): a regular file
 * of at most `maxBytes`. A FIFO with no writer, a device or a directory is refused with E_CONFIG instead of hanging the bake.
 */
export async function readHostFile(ctx: BakeContext, path: string, options: ReadHostFileOptions): Promise<Buffer> {
  const local = await ctx.hostPath(path, "read");
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    // O_NONBLOCK: opening a FIFO with no writer must not wait for one.
    handle = await open(local, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    throw new KilnError("E_CONFIG", `${options.what} ${path} not found (looked at ${local})`, {
      hint: options.hint ?? "paths are relative to the bake file's directory; check the name or create the file",
      cause: error,
    });
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new KilnError("E_CONFIG", `${options.what} ${path} is not a regular file`);
    if (info.size > options.maxBytes)
      throw new KilnError("E_CONFIG", `${options.what} ${path} is ${info.size} bytes; at most ${options.maxBytes} are read`);
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

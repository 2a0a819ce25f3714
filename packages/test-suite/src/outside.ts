import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Connection } from "@kiln/core";
import { outsideCommand } from "@kiln/core/kit";

export interface OutsideResult {
  /** The argv that ran (the platform's own CLI). */
  argv: string[];
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `command` on a machine from outside Kiln, through the platform's own CLI built from the machine's connection
 * descriptor alone (`docker exec`, `ssh` with the pinned host key, `lxc-attach`, `chroot`), as another tool would.
 */
export async function runOutside(connection: Connection, command: string[], options: { root?: boolean } = {}): Promise<OutsideResult> {
  const workDir = await mkdtemp(join(tmpdir(), "kiln-outside-"));
  try {
    const argv = await outsideCommand(connection, command, { workDir, root: options.root ?? true });
    const [file, ...args] = argv as [string, ...string[]];
    return await new Promise<OutsideResult>((resolve, reject) => {
      const child = spawn(file, args, { stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      child.on("error", (error: NodeJS.ErrnoException) =>
        reject(
          error.code === "ENOENT" ? new Error(`${file} not found: install the platform's CLI to check the connection from outside`) : error,
        ),
      );
      child.on("close", (exitCode) => resolve({ argv, exitCode, stdout, stderr }));
    });
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

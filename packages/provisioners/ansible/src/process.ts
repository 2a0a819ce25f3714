import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { KilnError } from "@kiln/core";

export interface RunOptions {
  cwd: string;
  env: Record<string, string>;
  signal: AbortSignal;
  onLine: (stream: "stdout" | "stderr", line: string) => void;
}

/** How long a process group gets to end after SIGTERM before SIGKILL. */
const KILL_GRACE_MS = 5_000;

/**
 * Runs a host command in its own process group, line by line. On abort the whole group gets SIGTERM, then SIGKILL: a
 * playbook's `docker exec` and `ssh` children end with it. Resolves with the exit code once every line has been read.
 */
export function runProcess(command: string, args: readonly string[], options: RunOptions): Promise<number> {
  if (options.signal.aborted) return Promise.reject(options.signal.reason);
  const child = spawn(command, args, { cwd: options.cwd, env: options.env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  const streams = (["stdout", "stderr"] as const).map((name) => {
    const lines = createInterface({ input: child[name], crlfDelay: Number.POSITIVE_INFINITY });
    lines.on("line", (line) => options.onLine(name, line));
    return new Promise<void>((resolve) => lines.on("close", resolve));
  });
  let killTimer: NodeJS.Timeout | undefined;
  const killGroup = (signal: NodeJS.Signals) => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, signal);
    } catch {
      // Already gone.
    }
  };
  const onAbort = () => {
    killGroup("SIGTERM");
    killTimer = setTimeout(() => killGroup("SIGKILL"), KILL_GRACE_MS);
  };
  options.signal.addEventListener("abort", onAbort, { once: true });
  return new Promise<number>((resolve, reject) => {
    child.on("error", (error: NodeJS.ErrnoException) => {
      options.signal.removeEventListener("abort", onAbort);
      reject(
        error.code === "ENOENT"
          ? new KilnError("E_MISSING_TOOL", `${command} not found on this host`, { hint: "install Ansible: apt-get install -y ansible" })
          : error,
      );
    });
    child.on("close", async (code, signal) => {
      options.signal.removeEventListener("abort", onAbort);
      clearTimeout(killTimer);
      await Promise.all(streams);
      if (options.signal.aborted) reject(options.signal.reason);
      else resolve(code ?? 128 + (signal === "SIGKILL" ? 9 : 15));
    });
  });
}

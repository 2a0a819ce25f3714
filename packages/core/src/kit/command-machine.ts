import { type ChildProcess, spawn } from "node:child_process";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { constants } from "node:os";
import { posix } from "node:path";
import type { Readable } from "node:stream";
import { KilnError } from "../errors.js";
import type { Connection, ExecOptions, ExecResult, Machine } from "../types.js";
import { extractDownload, packTree } from "./tar.js";

/** A host command that runs an argv on the machine. Its environment carries the values: they never go on a command line. */
export interface HostCommand {
  command: string;
  args: string[];
  env: Record<string, string>;
}

/** What a login shell of a Debian system would have: commands on the machine never see the host's environment. */
export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * A machine entered through a host command (`chroot`, `lxc-attach`): a subclass says how to run an argv there as a user; this
 * class does the rest. Commands run in their own process group, so a timeout or Ctrl-C ends everything they started. Files
 * move as tar streams through `tar` on the machine, so a symlink in the image can never make a write land outside it.
 */
export abstract class CommandMachine implements Machine {
  abstract readonly id: string;
  abstract readonly connection: Connection;
  abstract attachCommand(): string;
  abstract [Symbol.asyncDispose](): Promise<void>;

  /** The host command that runs `argv` on the machine as `user` (root when undefined), with `env` set there. */
  protected abstract hostCommand(argv: string[], user: string | undefined, env: Record<string, string>): HostCommand;

  /** The image's own /etc/resolv.conf (undefined: it had none), and the one lent to it for the build. */
  private resolver: { own: string | undefined; lent: string } | undefined;

  /** Gives the machine a resolver for the build (the host's, a bridge's), remembering the image's own for {@link restoreResolver}. */
  async lendResolver(text: string): Promise<void> {
    const own = await this.exec(["/bin/cat", "/etc/resolv.conf"]);
    this.resolver = { own: own.exitCode === 0 ? own.stdout : undefined, lent: text };
    await this.write("/etc/resolv.conf", Buffer.from(text), 0o644);
  }

  /**
   * Puts the image's own /etc/resolv.conf back before capture: the build's resolver is build-time configuration, not part of
   * the image. One a provisioner wrote is the image's and stays.
   */
  async restoreResolver(): Promise<void> {
    const lent = this.resolver;
    if (!lent || (await this.exec(["/bin/cat", "/etc/resolv.conf"])).stdout !== lent.lent) return;
    if (lent.own === undefined) await this.check(["/bin/rm", "-f", "/etc/resolv.conf"], "restore /etc/resolv.conf");
    else await this.write("/etc/resolv.conf", Buffer.from(lent.own), 0o644);
  }

  /** Runs a runtime boot script as an init would, with the runtime environment; the services it starts keep running. */
  async runBootScript(script: string, signal?: AbortSignal): Promise<void> {
    const booted = await this.exec(["/bin/sh", "-c", script], signal ? { signal } : {});
    if (booted.exitCode !== 0) throw new KilnError("E_LAUNCH", `the boot script exited with ${booted.exitCode}: ${booted.stderr.trim()}`);
  }

  /** Environment every command gets (a verify machine's runtime env, as a deployed process would see it). */
  protected baseEnv(): Record<string, string> {
    return {};
  }

  exec(cmd: string | string[], options: ExecOptions = {}): Promise<ExecResult> {
    const child = this.spawn(typeof cmd === "string" ? ["/bin/sh", "-c", cmd] : cmd, options);
    const output = { stdout: "", stderr: "" };
    for (const name of ["stdout", "stderr"] as const) {
      child[name]?.setEncoding("utf8");
      child[name]?.on("data", (text: string) => {
        output[name] += text;
        options.onOutput?.(name, text);
      });
    }
    return new Promise((resolve, reject) => {
      const stop = (reason: Error) => {
        killGroup(child);
        reject(reason);
      };
      const timer =
        options.timeout === undefined
          ? undefined
          : setTimeout(() => stop(new KilnError("E_TIMEOUT", `command timed out after ${options.timeout}ms`)), options.timeout);
      const onAbort = () =>
        stop(options.signal?.reason instanceof Error ? options.signal.reason : new KilnError("E_INTERRUPTED", "command aborted"));
      if (options.signal?.aborted) onAbort();
      options.signal?.addEventListener("abort", onAbort, { once: true });
      child.on("error", reject);
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
        resolve({ exitCode: code ?? 128 + (signal ? constants.signals[signal] : 0), ...output });
      });
    });
  }

  async upload(from: string | Readable, to: string, options: { mode?: number } = {}): Promise<void> {
    if (typeof from !== "string") return this.write(to, from, options.mode ?? 0o644);
    const info = await stat(from);
    if (!info.isDirectory()) return this.write(to, createReadStream(from), options.mode ?? info.mode & 0o7777);
    // Packed by the host's GNU tar, unpacked by the machine's.
    const { archive, packed } = packTree(from);
    await this.check(["/bin/sh", "-c", 'mkdir -p "$1" && exec tar -C "$1" -xf -', "sh", to], `upload ${from} to ${to}`, archive);
    await packed;
  }

  async download(from: string, to: string): Promise<void> {
    const isDirectory = (await this.exec(["test", "-d", from])).exitCode === 0;
    const archive = this.spawn(["tar", "-C", posix.dirname(from), "-cf", "-", posix.basename(from)], {});
    let stderr = "";
    archive.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => archive.on("close", resolve));
    await extractDownload(archive.stdout as Readable, from, to, isDirectory);
    const code = await exited;
    if (code !== 0)
      throw new KilnError("E_PROVISION", `cannot download ${from} from ${this.id}: ${stderr.trim() || `tar exited with ${code}`}`);
  }

  /** Writes one file on the machine, creating its directory: `cat` runs there, so symlinks resolve inside the machine. */
  protected async write(path: string, content: Buffer | Readable, mode: number): Promise<void> {
    const script = 'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"';
    await this.check(["/bin/sh", "-c", script, "sh", path, mode.toString(8)], `write ${path}`, content);
  }

  /** Runs a command as root, failing with its stderr. */
  protected async check(argv: string[], what: string, stdin?: Buffer | Readable): Promise<void> {
    const result = await this.exec(argv, { user: "root", ...(stdin === undefined ? {} : { stdin }) });
    if (result.exitCode !== 0)
      throw new KilnError("E_PROVISION", `cannot ${what} in ${this.id}: ${result.stderr.trim() || `exit code ${result.exitCode}`}`);
  }

  protected spawn(argv: string[], options: ExecOptions): ChildProcess {
    const user = options.user ?? "root";
    const isRoot = user === "root" || user === "0";
    const env = { PATH: DEFAULT_PATH, ...(isRoot ? { HOME: "/root" } : {}), ...this.baseEnv(), ...options.env };
    const cd = options.cwd === undefined ? [] : ["/bin/sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", options.cwd];
    const host = this.hostCommand([...cd, ...argv], isRoot ? undefined : user, env);
    const child = spawn(host.command, host.args, { env: host.env, detached: true, stdio: ["pipe", "pipe", "pipe"] });
    const stdin = options.stdin;
    if (stdin === undefined) child.stdin?.end();
    else if (typeof stdin === "string" || Buffer.isBuffer(stdin)) child.stdin?.end(stdin);
    else stdin.pipe(child.stdin as NodeJS.WritableStream);
    child.stdin?.on("error", () => {});
    return child;
  }
}

/** Runs a host command, failing with its stderr. */
export function runHost(command: string, args: string[], code: "E_LAUNCH" | "E_CAPTURE" | "E_CLEANUP" = "E_LAUNCH"): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", (error: NodeJS.ErrnoException) =>
      reject(error.code === "ENOENT" ? new KilnError("E_MISSING_TOOL", `${command} not found on this host`) : error),
    );
    child.on("close", (exit) =>
      exit === 0
        ? resolve(stdout)
        : reject(new KilnError(code, `${command} ${args.join(" ")} failed: ${stderr.trim() || `exit code ${exit}`}`)),
    );
  });
}

function killGroup(child: ChildProcess): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

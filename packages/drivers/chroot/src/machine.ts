import { type ChildProcess, spawn } from "node:child_process";
import { createReadStream } from "node:fs";
import { readdir, readFile, readlink, rm, stat } from "node:fs/promises";
import { constants } from "node:os";
import { join, posix } from "node:path";
import type { Readable } from "node:stream";
import tarFs from "tar-fs";
import { type ChrootConnection, type ExecOptions, type ExecResult, KilnError, type Machine } from "@kiln/core";
import { extractDownload } from "@kiln/core/kit";

/** What a login shell of a Debian system would have: commands in the chroot never see the host's environment. */
const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export interface ChrootMachineOptions {
  /** Unique name, `kiln-<run id>-<image>-<role>-<hex>`: the machine's id. */
  name: string;
  /** The machine's directory on the host; the tree is its `rootfs`. */
  dir: string;
  /** Environment every command gets (a verify machine's runtime env, as a deployed process would). */
  env?: Record<string, string>;
  /** Ports a verify scenario reaches from the host: a chroot shares the host's network, so they are on 127.0.0.1. */
  ports?: number[];
}

/**
 * A directory tree on this host entered with `chroot`: commands run as root (or `--userspec`) with a clean environment, in
 * their own process group so a timeout ends everything they started. Files move as tar streams through `tar` inside the
 * tree, so a symlink in the image can never make a host-side write land outside it.
 */
export class ChrootMachine implements Machine {
  readonly id: string;
  readonly dir: string;
  readonly root: string;
  readonly connection: ChrootConnection;
  /** The image's own /etc/resolv.conf (undefined: it had none), and the host's copied over it for the build. */
  private resolvConf: { own: string | undefined; host: string } | undefined;
  private disposed: Promise<void> | undefined;

  constructor(private readonly options: ChrootMachineOptions) {
    this.id = options.name;
    this.dir = options.dir;
    this.root = join(options.dir, "rootfs");
    this.connection = { kind: "chroot", path: this.root };
  }

  /** Mounts /proc and /sys (read-only) and gives the tree the host's resolver, remembering the image's own for capture. */
  async start(): Promise<void> {
    await run("mount", ["-t", "proc", "proc", join(this.root, "proc")]);
    await run("mount", ["-t", "sysfs", "-o", "ro", "sysfs", join(this.root, "sys")]);
    const own = await this.exec(["/bin/cat", "/etc/resolv.conf"]);
    const host = await readFile("/etc/resolv.conf", "utf8");
    this.resolvConf = { own: own.exitCode === 0 ? own.stdout : undefined, host };
    await this.write("/etc/resolv.conf", Buffer.from(host), 0o644);
  }

  /**
   * Puts the image's own /etc/resolv.conf back: the host's resolver is build-time configuration, not part of the image. One
   * a provisioner wrote is the image's and stays.
   */
  async restoreResolvConf(): Promise<void> {
    const copied = this.resolvConf;
    if (!copied || (await this.exec(["/bin/cat", "/etc/resolv.conf"])).stdout !== copied.host) return;
    if (copied.own === undefined) await this.check(["/bin/rm", "-f", "/etc/resolv.conf"], "restore /etc/resolv.conf");
    else await this.write("/etc/resolv.conf", Buffer.from(copied.own), 0o644);
  }

  attachCommand(): string {
    return `chroot ${this.root} /bin/sh`;
  }

  async hostAddress(port: number): Promise<{ host: string; port: number } | undefined> {
    return this.options.ports?.includes(port) ? { host: "127.0.0.1", port } : undefined;
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
        resolve({ exitCode: code ?? 128 + signalNumber(signal), ...output });
      });
    });
  }

  async upload(from: string | Readable, to: string, options: { mode?: number } = {}): Promise<void> {
    if (typeof from !== "string") return this.write(to, from, options.mode ?? 0o644);
    const info = await stat(from);
    if (!info.isDirectory()) return this.write(to, createReadStream(from), options.mode ?? info.mode & 0o7777);
    // Owned by root inside, as a container's upload would be.
    const archive = tarFs.pack(from, { map: (header) => ({ ...header, uid: 0, gid: 0 }) });
    await this.check(
      ["/bin/sh", "-c", 'mkdir -p "$1" && exec tar -C "$1" -xf -', "sh", to],
      `upload ${from} to ${to}`,
      archive as unknown as Readable,
    );
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

  /**
   * Ends every process still running in the tree (a service a provisioner started), unmounts what `start` mounted, and
   * removes the directory — never while anything is still mounted below it. Safe to call again.
   */
  [Symbol.asyncDispose](): Promise<void> {
    this.disposed ??= this.destroy().catch((error: unknown) => {
      this.disposed = undefined;
      throw error;
    });
    return this.disposed;
  }

  private async destroy(): Promise<void> {
    await killProcessesIn(this.root);
    for (const target of await mountsBelow(this.dir)) await run("umount", [target]).catch(() => run("umount", ["-l", target]));
    const left = await mountsBelow(this.dir);
    if (left.length > 0)
      throw new KilnError("E_CLEANUP", `cannot unmount ${left.join(", ")}`, { hint: `umount -l ${left.join(" ")}; rm -rf ${this.dir}` });
    await rm(this.dir, { recursive: true, force: true });
  }

  private spawn(argv: string[], options: ExecOptions): ChildProcess {
    const user = options.user ?? "root";
    const isRoot = user === "root" || user === "0";
    const env = { PATH: DEFAULT_PATH, ...(isRoot ? { HOME: "/root" } : {}), ...this.options.env, ...options.env };
    const cd = options.cwd === undefined ? [] : ["/bin/sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", options.cwd];
    // The environment goes through spawn, never onto a command line (where `ps` would show a secret).
    // `chroot` is found on the clean PATH below (it is /usr/sbin/chroot on Debian).
    const child = spawn("chroot", [...(isRoot ? [] : [`--userspec=${user}`]), this.root, ...cd, ...argv], {
      env,
      detached: true,
      stdio: ["pipe", "pipe", "pipe"],
    });
    const stdin = options.stdin;
    if (stdin === undefined) child.stdin?.end();
    else if (typeof stdin === "string" || Buffer.isBuffer(stdin)) child.stdin?.end(stdin);
    else stdin.pipe(child.stdin as NodeJS.WritableStream);
    child.stdin?.on("error", () => {});
    return child;
  }

  /** Writes one file inside the tree, creating its directory: `cat` runs in the chroot, so symlinks resolve inside it. */
  private async write(path: string, content: Buffer | Readable, mode: number): Promise<void> {
    const script = 'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"';
    await this.check(["/bin/sh", "-c", script, "sh", path, mode.toString(8)], `write ${path}`, content);
  }

  private async check(argv: string[], what: string, stdin?: Buffer | Readable): Promise<void> {
    const result = await this.exec(argv, { user: "root", ...(stdin === undefined ? {} : { stdin }) });
    if (result.exitCode !== 0)
      throw new KilnError("E_PROVISION", `cannot ${what} in ${this.id}: ${result.stderr.trim() || `exit code ${result.exitCode}`}`);
  }
}

/** Runs a host command, failing with its stderr. */
export function run(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0
        ? resolve()
        : reject(new KilnError("E_LAUNCH", `${command} ${args.join(" ")} failed: ${stderr.trim() || `exit code ${code}`}`)),
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

function signalNumber(signal: NodeJS.Signals | null): number {
  return signal ? constants.signals[signal] : 0;
}

/** Mount points at or below `dir`, deepest first. */
async function mountsBelow(dir: string): Promise<string[]> {
  const mounts = (await readFile("/proc/self/mounts", "utf8")).split("\n").map((line) => (line.split(" ")[1] ?? "").replace(/\\040/g, " "));
  return mounts.filter((target) => target === dir || target.startsWith(`${dir}/`)).sort((a, b) => b.length - a.length);
}

/** Kills every process whose root directory is `root` (or below it), until none is left. */
async function killProcessesIn(root: string): Promise<void> {
  for (let round = 0; round < 10; round++) {
    const pids: number[] = [];
    for (const entry of await readdir("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      const where = await readlink(`/proc/${entry}/root`).catch(() => undefined);
      if (where === root || where?.startsWith(`${root}/`)) pids.push(Number(entry));
    }
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // Exited meanwhile.
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

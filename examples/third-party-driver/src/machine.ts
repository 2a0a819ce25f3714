import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { type ChrootConnection, KilnError, type KilnErrorCode } from "@kiln/core";
import { CommandMachine, DEFAULT_PATH, type HostCommand } from "@kiln/core/kit";

/** Every namespace but a user namespace: root inside is root on the host. */
const NAMESPACES = ["--mount", "--uts", "--ipc", "--net", "--pid"];

/**
 * PID 1 of a machine. It says when it is up (after unshare has chrooted and mounted /proc), then waits, reaping the orphans a
 * provisioner leaves (a shell's `wait` collects any child: a dead service is not left as a zombie a process check would see).
 * It runs until it is killed, so a machine `--on-error=abort` keeps outlives Kiln; a missing `sleep` ends it at once.
 */
const HOLDER_SCRIPT = "echo ready; exec </dev/null >/dev/null 2>&1; while sleep 86400 & wait $!; do :; done";

/** Deadline of the quick host commands: starting the holder, bringing up loopback, waiting for it to exit. */
const QUICK_MS = 30_000;
/** Deadline of a tar of the whole tree (extract or capture). */
export const TAR_TIMEOUT_MS = 30 * 60_000;

export interface UnshareMachineOptions {
  /** Unique name, `kiln-<run id>-<image>-<role>-<hex>`: the machine's id and its directory's name. */
  name: string;
  /** The machine's directory on the host; the tree is its `rootfs`. */
  dir: string;
  /** Environment every command gets (a verify machine's runtime env, as a deployed process would see it). */
  env?: Record<string, string>;
}

/**
 * A tree on this host with its own mount, UTS, IPC, network (loopback only) and PID namespaces, held open by a small PID 1
 * that `unshare` started chrooted in it; commands enter all five with `nsenter`. The kit's CommandMachine does the rest:
 * process groups, timeouts, tar-stream uploads extracted inside the tree.
 */
export class UnshareMachine extends CommandMachine {
  readonly id: string;
  readonly dir: string;
  readonly root: string;
  /** The tree, for tools outside Kiln: they reach its files as root, not its namespaces (see the README). */
  readonly connection: ChrootConnection;
  private holder: ChildProcess | undefined;
  private holderExited: Promise<void> = Promise.resolve();
  /** Host PID of the machine's PID 1: what `nsenter` enters. Undefined before start and after removal. */
  private initPid: number | undefined;
  private starting: Promise<void> | undefined;
  private readonly stopping = new AbortController();
  private disposed: Promise<void> | undefined;

  constructor(private readonly options: UnshareMachineOptions) {
    super();
    this.id = options.name;
    this.dir = options.dir;
    this.root = join(options.dir, "rootfs");
    this.connection = { kind: "chroot", path: this.root };
  }

  /** Unpacks `tarball` as the tree, starts PID 1 in new namespaces chrooted in it, and brings up loopback. */
  start(tarball: string, signal: AbortSignal): Promise<void> {
    this.starting = this.boot(tarball, AbortSignal.any([signal, this.stopping.signal]));
    return this.starting;
  }

  private async boot(tarball: string, signal: AbortSignal): Promise<void> {
    await mkdir(this.root, { recursive: true });
    await run("tar", ["--numeric-owner", "-xpf", tarball, "-C", this.root], { timeoutMs: TAR_TIMEOUT_MS, signal });
    signal.throwIfAborted();
    // --kill-child: should unshare itself be killed, PID 1 (and so the whole PID namespace) goes too.
    const args = ["--fork", "--kill-child", ...NAMESPACES, "--mount-proc", `--root=${this.root}`, "--", "/bin/sh", "-c", HOLDER_SCRIPT];
    // Its own process group: a Ctrl-C at the terminal reaches Kiln, which removes the machine in order, not unshare.
    const holder = spawn("unshare", [...args, this.id], { stdio: ["ignore", "pipe", "pipe"], detached: true, env: { PATH: DEFAULT_PATH } });
    this.holder = holder;
    this.holderExited = new Promise((resolve) => {
      holder.once("exit", () => resolve());
      holder.once("error", () => resolve());
    });
    await holderReady(holder, signal);
    // Nothing more comes from it, and Kiln may exit while it runs (a machine kept by --on-error=abort).
    holder.stdout?.destroy();
    holder.stderr?.destroy();
    holder.unref();
    this.initPid = await initPidOf(holder);
    // A new network namespace has only `lo`, and it is down: the host's `ip` brings it up from outside.
    await run("nsenter", [`--target=${this.initPid}`, "--net", "ip", "link", "set", "lo", "up"], { timeoutMs: QUICK_MS, signal });
  }

  attachCommand(): string {
    return `nsenter --target=${this.initPid ?? "<pid>"} ${NAMESPACES.join(" ")} --root --wd /bin/sh`;
  }

  /** What a person runs to remove the machine by hand. */
  removeCommand(): string {
    const pid = this.initPid ?? this.holder?.pid;
    return `${pid ? `kill -9 ${pid}; ` : ""}rm -rf ${this.dir}`;
  }

  /** Kills PID 1 (the kernel then kills everything else in the PID namespace) and removes the tree. Safe to call again. */
  [Symbol.asyncDispose](): Promise<void> {
    this.disposed ??= this.destroy().catch((error: unknown) => {
      this.disposed = undefined;
      throw error;
    });
    return this.disposed;
  }

  private async destroy(): Promise<void> {
    this.stopping.abort(new KilnError("E_INTERRUPTED", `machine ${this.id} is being removed`));
    await this.starting?.catch(() => {});
    const holder = this.holder;
    const initPid = this.initPid ?? (holder ? await initPidOf(holder).catch(() => undefined) : undefined);
    this.initPid = undefined;
    if (holder?.pid !== undefined && holder.exitCode === null && holder.signalCode === null) {
      // From outside, PID 1 of a PID namespace takes only SIGKILL. As it ends, the kernel kills every other process of the
      // namespace, and unshare, which waits for it, exits; the other namespaces go with their last process.
      kill(initPid ?? holder.pid);
      if (!(await settlesWithin(this.holderExited, QUICK_MS))) {
        holder.kill("SIGKILL");
        if (!(await settlesWithin(this.holderExited, QUICK_MS)))
          throw new KilnError("E_CLEANUP", `machine ${this.id}: unshare (pid ${holder.pid}) does not exit`, { hint: this.removeCommand() });
      }
    }
    await rm(this.dir, { recursive: true, force: true });
  }

  protected override baseEnv(): Record<string, string> {
    return this.options.env ?? {};
  }

  // The environment goes through spawn (nsenter passes it on), never a command line. Another user: the image's own coreutils
  // `chroot --userspec` looks the name up in the image and sets its groups.
  protected hostCommand(argv: string[], user: string | undefined, env: Record<string, string>): HostCommand {
    // Never a stale PID: after removal it could be any process of the host.
    if (this.initPid === undefined) throw new KilnError("E_PROVISION", `machine ${this.id} is not running`);
    const asUser = user ? ["chroot", `--userspec=${user}`, "/"] : [];
    return { command: "nsenter", args: [`--target=${this.initPid}`, ...NAMESPACES, "--root", "--wd", "--", ...asUser, ...argv], env };
  }
}

/** Runs a host command, killed at its deadline or when `signal` aborts, failing with its stderr. */
export function run(
  command: string,
  args: string[],
  options: { timeoutMs: number; signal?: AbortSignal; code?: KilnErrorCode },
): Promise<string> {
  const { timeoutMs, signal } = options;
  return new Promise((resolve, reject) => {
    const settings = { timeout: timeoutMs, killSignal: "SIGKILL" as const, maxBuffer: 16 * 1024 * 1024, ...(signal ? { signal } : {}) };
    execFile(command, args, settings, (error, stdout, stderr) => {
      if (!error) return resolve(stdout);
      if (signal?.aborted)
        return reject(signal.reason instanceof Error ? signal.reason : new KilnError("E_INTERRUPTED", `${command} aborted`));
      if ((error as NodeJS.ErrnoException).code === "ENOENT")
        return reject(new KilnError("E_MISSING_TOOL", `${command} not found on this host`));
      const what = `${command} ${args.join(" ")}`;
      if (error.killed) return reject(new KilnError("E_TIMEOUT", `${what} did not finish within ${timeoutMs / 1000}s`));
      reject(new KilnError(options.code ?? "E_LAUNCH", `${what} failed: ${stderr.trim() || error.message}`));
    });
  });
}

/** Resolves once the holder printed `ready`; rejects when it exits first, at the deadline, or when `signal` aborts. */
function holderReady(holder: ChildProcess, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    let stdout = "";
    let stderr = "";
    const onStdout = (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes("ready\n")) finish();
    };
    const onStderr = (chunk: Buffer) => (stderr += chunk.toString());
    const onError = (error: NodeJS.ErrnoException) =>
      finish(
        error.code === "ENOENT"
          ? new KilnError("E_MISSING_TOOL", "unshare not found on this host", { hint: "install it: apt-get install -y util-linux" })
          : error,
      );
    const onExit = (code: number | null) =>
      finish(new KilnError("E_LAUNCH", `unshare exited (${code}) before the machine was up: ${stderr.trim()}`));
    const onAbort = () => finish(signal.reason instanceof Error ? signal.reason : new KilnError("E_INTERRUPTED", "launch aborted"));
    const timer = setTimeout(
      () => finish(new KilnError("E_TIMEOUT", `unshare did not start the machine within ${QUICK_MS / 1000}s`)),
      QUICK_MS,
    );
    function finish(error?: Error) {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      holder.stdout?.off("data", onStdout);
      holder.stderr?.off("data", onStderr);
      holder.off("error", onError).off("exit", onExit);
      if (error) reject(error);
      else resolve();
    }
    holder.stdout?.on("data", onStdout);
    holder.stderr?.on("data", onStderr);
    holder.once("error", onError).once("exit", onExit);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** The host PID of unshare's one child, the machine's PID 1. */
async function initPidOf(holder: ChildProcess): Promise<number> {
  const children = await readFile(`/proc/${holder.pid}/task/${holder.pid}/children`, "utf8").catch(() => "");
  const pid = Number(children.trim().split(" ")[0]);
  if (!Number.isInteger(pid) || pid <= 0)
    throw new KilnError("E_LAUNCH", `cannot find the machine's PID 1 (child of unshare ${holder.pid})`);
  return pid;
}

function kill(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // Gone already.
  }
}

/** Whether `promise` settles within `ms`. */
function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  return Promise.race([promise.then(() => true), deadline]).finally(() => clearTimeout(timer));
}

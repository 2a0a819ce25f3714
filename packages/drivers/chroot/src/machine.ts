import { readdir, readFile, readlink, rm } from "node:fs/promises";
import { join } from "node:path";
import { type ChrootConnection, KilnError } from "@kiln/core";
import { CommandMachine, type HostCommand, runHost } from "@kiln/core/kit";

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
export class ChrootMachine extends CommandMachine {
  readonly id: string;
  readonly dir: string;
  readonly root: string;
  readonly connection: ChrootConnection;
  /** The image's own /etc/resolv.conf (undefined: it had none), and the host's copied over it for the build. */
  private resolvConf: { own: string | undefined; host: string } | undefined;
  private disposed: Promise<void> | undefined;

  constructor(private readonly options: ChrootMachineOptions) {
    super();
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

  protected override baseEnv(): Record<string, string> {
    return this.options.env ?? {};
  }

  // `chroot` is found on the clean PATH below (it is /usr/sbin/chroot on Debian); the environment goes through spawn.
  protected hostCommand(argv: string[], user: string | undefined, env: Record<string, string>): HostCommand {
    return { command: "chroot", args: [...(user ? [`--userspec=${user}`] : []), this.root, ...argv], env };
  }
}

/** Runs a host command, failing with its stderr. */
export async function run(command: string, args: string[]): Promise<void> {
  await runHost(command, args);
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

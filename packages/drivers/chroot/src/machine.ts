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
  private disposed: Promise<void> | undefined;

  constructor(private readonly options: ChrootMachineOptions) {
    super();
    this.id = options.name;
    this.dir = options.dir;
    this.root = join(options.dir, "rootfs");
    this.connection = { kind: "chroot", path: this.root };
  }

  /** Mounts /proc and /sys (read-only) and lends the tree the host's resolver (the image's own is put back before capture). */
  async start(): Promise<void> {
    await run("mount", ["-t", "proc", "proc", join(this.root, "proc")]);
    await run("mount", ["-t", "sysfs", "-o", "ro", "sysfs", join(this.root, "sys")]);
    await this.lendResolver(await readFile("/etc/resolv.conf", "utf8"));
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

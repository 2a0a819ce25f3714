import { rm } from "node:fs/promises";
import { join } from "node:path";
import { KilnError, type LxcConnection } from "@kiln/core";
import { CommandMachine, type HostCommand, runHost } from "@kiln/core/kit";

export interface LxcMachineOptions {
  /** Unique container name, `kiln-<run id>-<image>-<role>-<hex>`: the machine's id. */
  name: string;
  lxcpath: string;
  /** Environment every command gets (a verify machine's runtime env). */
  env?: Record<string, string>;
  /** The container's IPv4 address on the bridge, when it has one: where a verify check reaches its ports. */
  address?: string;
  /** Ports a verify scenario reaches from the host. */
  ports?: number[];
}

/**
 * An LXC system container, entered with `lxc-attach` as root with a clean environment (values travel through the process
 * environment and `--keep-var`, never on a command line); another user through `runuser`. The attached command stays in
 * lxc-attach's process group, so a timeout or Ctrl-C ends it and everything it started.
 */
export class LxcMachine extends CommandMachine {
  readonly id: string;
  readonly connection: LxcConnection;
  readonly dir: string;
  private disposed: Promise<void> | undefined;

  constructor(private readonly options: LxcMachineOptions) {
    super();
    this.id = options.name;
    this.dir = join(options.lxcpath, options.name);
    this.connection = { kind: "lxc", name: options.name, lxcpath: options.lxcpath };
  }

  attachCommand(): string {
    return `lxc-attach -n ${this.id} -P ${this.options.lxcpath}`;
  }

  async hostAddress(port: number): Promise<{ host: string; port: number } | undefined> {
    return this.options.address && this.options.ports?.includes(port) ? { host: this.options.address, port } : undefined;
  }

  protected override baseEnv(): Record<string, string> {
    return this.options.env ?? {};
  }

  protected hostCommand(argv: string[], user: string | undefined, env: Record<string, string>): HostCommand {
    const keep = Object.keys(env).flatMap((name) => ["--keep-var", name]);
    const as = user ? ["runuser", "-u", user, "--"] : [];
    return { command: "lxc-attach", args: ["-n", this.id, "-P", this.options.lxcpath, "--clear-env", ...keep, "--", ...as, ...argv], env };
  }

  /** Shuts the container down cleanly (its init stops services and syncs), as before capture; forcibly after `timeoutS`. */
  async stop(timeoutS = 60): Promise<void> {
    await runHost("lxc-stop", ["-n", this.id, "-P", this.options.lxcpath, "-t", String(timeoutS)], "E_CAPTURE").catch(async (error) => {
      if (!(await this.isRunning())) return;
      throw error;
    });
  }

  async isRunning(): Promise<boolean> {
    const state = await runHost("lxc-info", ["-n", this.id, "-P", this.options.lxcpath, "-sH"]).catch(() => "");
    return state.trim() === "RUNNING";
  }

  /** Kills and destroys the container; one that never got created is fine. Safe to call again. */
  [Symbol.asyncDispose](): Promise<void> {
    this.disposed ??= destroy(this.id, this.options.lxcpath).catch((error: unknown) => {
      this.disposed = undefined;
      throw error;
    });
    return this.disposed;
  }
}

/** `lxc-stop -k` then `lxc-destroy`, falling back to removing the directory of a container LXC no longer knows. */
export async function destroy(name: string, lxcpath: string): Promise<void> {
  await runHost("lxc-stop", ["-n", name, "-P", lxcpath, "-k"]).catch(() => undefined);
  await runHost("lxc-destroy", ["-n", name, "-P", lxcpath]).catch(async (error: unknown) => {
    const known = await runHost("lxc-ls", ["-P", lxcpath, "-1"]).catch(() => "");
    if (known.split("\n").includes(name))
      throw new KilnError("E_CLEANUP", `cannot destroy container ${name}: ${(error as Error).message}`, {
        hint: `lxc-stop -k -n ${name} -P ${lxcpath}; lxc-destroy -n ${name} -P ${lxcpath}`,
      });
  });
  await rm(join(lxcpath, name), { recursive: true, force: true });
}

import { spawn } from "node:child_process";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { stripVTControlCharacters } from "node:util";
import { KilnError } from "@kiln/core";
import { withFileLock } from "@kiln/core/kit";

export interface VagrantRun {
  /** The Vagrant project directory (its Vagrantfile and `.vagrant/`). */
  cwd: string;
  signal?: AbortSignal;
  /** Each line Vagrant prints, without its progress bars. */
  onLine?: (line: string) => void;
  code?: "E_LAUNCH" | "E_CAPTURE" | "E_CLEANUP" | "E_SOURCE";
}

/** Where Vagrant keeps boxes: `$VAGRANT_HOME`, else `~/.vagrant.d`. */
export function vagrantHome(): string {
  return process.env.VAGRANT_HOME ?? join(homedir(), ".vagrant.d");
}

/** Vagrant's environment: no version check against HashiCorp's servers, no colours, no prompts. */
function vagrantEnv(): NodeJS.ProcessEnv {
  return { ...process.env, VAGRANT_CHECKPOINT_DISABLE: "1", VAGRANT_NO_COLOR: "1", VAGRANT_DEFAULT_PROVIDER: "libvirt" };
}

/**
 * Runs `vagrant …` in a project directory, streaming its lines. On abort the whole process group gets SIGTERM, then SIGKILL:
 * Vagrant's own Ctrl-C handling would ask questions or wait; the driver's cleanup removes what it had created.
 */
export function vagrant(args: string[], run: VagrantRun): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("vagrant", args, { cwd: run.cwd, env: vagrantEnv(), stdio: ["ignore", "pipe", "pipe"], detached: true });
    const lines: string[] = [];
    let pending = "";
    const take = (chunk: Buffer) => {
      pending += chunk.toString();
      const parts = pending.split("\n");
      pending = parts.pop() ?? "";
      for (const part of parts) {
        // Progress bars redraw with \r and ESC[K: keep the last state of a line.
        const line = stripVTControlCharacters(part.split("\r").at(-1) ?? "").trimEnd();
        if (line === "" || /^Progress: /.test(line)) continue;
        lines.push(line);
        run.onLine?.(line);
      }
    };
    child.stdout.on("data", take);
    child.stderr.on("data", take);
    let killTimer: NodeJS.Timeout | undefined;
    const stop = () => {
      signalGroup(child.pid, "SIGTERM");
      killTimer = setTimeout(() => signalGroup(child.pid, "SIGKILL"), 5_000);
    };
    run.signal?.addEventListener("abort", stop, { once: true });
    child.on("error", (error: NodeJS.ErrnoException) =>
      reject(
        error.code === "ENOENT"
          ? new KilnError("E_MISSING_TOOL", "vagrant not found on this host", { hint: "apt-get install -y vagrant vagrant-libvirt" })
          : error,
      ),
    );
    child.on("close", (exit) => {
      clearTimeout(killTimer);
      run.signal?.removeEventListener("abort", stop);
      if (pending) take(Buffer.from("\n"));
      if (run.signal?.aborted) return reject(run.signal.reason);
      if (exit === 0) return resolve(lines.join("\n"));
      reject(
        // A Ruby backtrace says where Vagrant failed, not why: its message is the line above it.
        new KilnError(
          run.code ?? "E_LAUNCH",
          `vagrant ${args[0]} failed (exit ${exit}):\n${lines
            .filter((line) => !/^\s+from \//.test(line))
            .slice(-15)
            .join("\n")}`,
          {
            hint: `cd ${run.cwd} && vagrant ${args.join(" ")} shows it again`,
          },
        ),
      );
    });
  });
}

function signalGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  try {
    if (pid !== undefined) process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}

export interface SshConfig {
  host: string;
  port: number;
  user: string;
  identityFile: string;
}

/** The login `vagrant ssh-config` prints for the project's machine. */
export async function sshConfig(cwd: string, signal?: AbortSignal): Promise<SshConfig> {
  const text = await vagrant(["ssh-config"], { cwd, ...(signal ? { signal } : {}) });
  const field = (name: string) =>
    new RegExp(`^\\s*${name}\\s+(.+)$`, "m")
      .exec(text)?.[1]
      ?.trim()
      .replace(/^"(.*)"$/, "$1");
  const host = field("HostName");
  const user = field("User");
  const identityFile = field("IdentityFile");
  if (!host || !user || !identityFile) throw new KilnError("E_LAUNCH", `vagrant ssh-config gave no login:\n${text}`);
  return { host, port: Number(field("Port") ?? 22), user, identityFile };
}

/** A box name as Vagrant stores it on disk (`a/b` → `a-VAGRANTSLASH-b`). */
export function boxDirName(name: string): string {
  return name.replaceAll("/", "-VAGRANTSLASH-");
}

/**
 * vagrant-libvirt creates its management network at the first `vagrant up` and removes it at the last `vagrant destroy`, with
 * a lock only inside one Vagrant process: two bakes at once could both create it, or one could remove it while the other's
 * domain is not started yet. Kiln holds a host-wide lock over those moments — `vagrant up` until the domain has started, and
 * `vagrant destroy` — so VMs of parallel bakes still boot at the same time.
 */
const NETWORK_LOCK = join(tmpdir(), "kiln-vagrant-libvirt-network");

/** `vagrant up`, holding the network lock until the domain starts. */
export async function vagrantUp(run: VagrantRun): Promise<void> {
  let domainStarting: () => void = () => {};
  const starting = new Promise<void>((resolve) => (domainStarting = resolve));
  let up: Promise<string> | undefined;
  await withFileLock(
    NETWORK_LOCK,
    async () => {
      up = vagrant(["up", "--provider=libvirt"], {
        ...run,
        onLine: (line) => {
          run.onLine?.(line);
          // Printed once the domain has started and holds the network. ("Starting domain." comes before the start call:
          // releasing there let another bake's destroy remove the network first — "Network not found: vagrant-libvirt".)
          if (/Waiting for domain to get an IP/.test(line)) domainStarting();
        },
      });
      await Promise.race([starting, up.catch(() => undefined)]);
    },
    run.signal ? { signal: run.signal } : {},
  );
  await up;
}

/** `vagrant destroy -f`, under the network lock. */
export function vagrantDestroy(cwd: string): Promise<void> {
  return withFileLock(NETWORK_LOCK, async () => {
    await vagrant(["destroy", "-f"], { cwd, code: "E_CLEANUP" });
  });
}

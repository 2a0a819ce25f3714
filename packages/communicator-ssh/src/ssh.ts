import { constants } from "node:os";
import type { Readable } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import type { NodeSSH } from "node-ssh";
import type { ClientChannel } from "ssh2";
import { KilnError, type ExecOptions, type ExecResult, type Machine, type SshConnection } from "@kiln/core";
import { shellQuote as quote } from "@kiln/core/kit";
import { abortReason, raceAbort, waitForSsh, type SshTarget } from "./connect.js";
import { downloadPath, uploadPath } from "./transfer.js";

export interface SshOptions {
  /** Host name or address of the machine. */
  host: string;
  /** sshd port. Default 22. */
  port?: number;
  /** User to log in as. */
  user: string;
  /** Private key text (OpenSSH or PEM), not a path. Never logged. */
  privateKey: string;
  /** Host key the server must present (`ssh-ed25519 AAAA…`, e.g. `machine.hostKey` of an earlier connect). Default: trust the first one seen and pin it. */
  hostKey?: string;
  /** How long to wait for sshd (reachable, banner, login) on connect and on each reconnect, in ms. Default 5 minutes. */
  deadlineMs?: number;
  /** Stops waiting for sshd. */
  signal?: AbortSignal;
  /** Called before each new attempt while sshd is not ready yet. */
  onRetry?: (attempt: number, error: unknown) => void;
  /**
   * User that uploads and downloads act as, e.g. "root" when the login user is not (cloud images log in as `admin`/`ubuntu`
   * but provisioners write anywhere, as in a container). Files are staged in /tmp over SFTP and moved with `sudo -n`.
   * Default: the login user, straight over SFTP.
   */
  transferAs?: string;
}

/** What `exec` returns over SSH: when the command was killed by a signal, its name (e.g. `KILL`) and exit code 128 + its number. */
export interface SshExecResult extends ExecResult {
  signal?: string;
}

const DEFAULT_DEADLINE_MS = 5 * 60_000;

/** Connects to sshd, waiting for it with backoff until the deadline, and pins the host key it presents. */
export async function connectSsh(options: SshOptions): Promise<SshMachine> {
  const machine = new SshMachine(options);
  await machine.reconnect();
  return machine;
}

/** A machine reached over SSH. Disposing it closes the connection; the machine itself is left to its driver. */
export class SshMachine implements Machine {
  readonly id: string;
  private readonly target: SshTarget;
  private pinnedKey: string | undefined;
  private session: NodeSSH | undefined;
  private closed = false;

  constructor(private readonly options: SshOptions) {
    const port = options.port ?? 22;
    this.target = { host: options.host, port, user: options.user, privateKey: options.privateKey };
    this.pinnedKey = options.hostKey;
    this.id = `${options.user}@${options.host}:${port}`;
  }

  /** The server's host key (`ssh-ed25519 AAAA…`), pinned since the first connect. */
  get hostKey(): string | undefined {
    return this.pinnedKey;
  }

  /**
   * How a tool outside Kiln logs in as Kiln does: the key, the pinned host key (for a known_hosts file), and `sudo -n` to
   * become root when the login user is not root — the way `exec` runs commands as root.
   */
  get connection(): SshConnection {
    const { host, port, user, privateKey } = this.target;
    const become = isRoot(user) ? {} : { become: { method: "sudo" as const, user: "root" } };
    return { kind: "ssh", host, port, user, privateKey, hostKey: this.pinnedKey ?? "", ...become };
  }

  attachCommand(): string {
    // The key is never printed: the user saves it (from the bake's key pair) and points ssh at the file.
    return `ssh -i <private key file, saved with mode 0600> -p ${this.target.port} ${this.target.user}@${this.target.host}`;
  }

  /** (Re)connects, waiting for sshd again — after `expect_disconnect` (a reboot). The pinned host key must not change. */
  async reconnect(): Promise<void> {
    this.session?.dispose();
    this.session = undefined;
    const session = await waitForSsh(this.target, {
      hostKey: this.pinnedKey,
      deadlineMs: this.options.deadlineMs ?? DEFAULT_DEADLINE_MS,
      signal: this.options.signal,
      onRetry: this.options.onRetry,
    });
    this.pinnedKey = session.hostKey;
    this.session = session.ssh;
    this.closed = false;
  }

  private ssh(): NodeSSH {
    if (this.closed) throw new KilnError("E_INTERNAL", `the SSH connection to ${this.id} was closed`);
    if (!this.session?.isConnected()) {
      throw new KilnError("E_PROVISION", `the SSH connection to ${this.id} is lost`, {
        hint: "if the machine reboots, reconnect (expect_disconnect) first",
      });
    }
    return this.session;
  }

  async exec(cmd: string | string[], options: ExecOptions = {}): Promise<SshExecResult> {
    const command = remoteCommand(cmd, options, this.target.user);
    const run = await openChannel(this.ssh(), command.line, (channel) => collect(channel, options.onOutput));
    writeStdin(run.channel, options.stdin, command.stdinPrefix);
    try {
      const outcome = await untilDone(run.done, options, () => this.stop(run.channel, run.pid(), command.sudo));
      return run.result(outcome);
    } catch (error) {
      if (error instanceof ConnectionLost)
        throw new KilnError("E_PROVISION", `the SSH connection to ${this.id} was lost while a command ran`, {
          hint: "if the command reboots the machine, mark the step expect_disconnect",
        });
      throw error;
    }
  }

  /** Kills the command's process group (sshd makes each session its own), then closes the channel. */
  private async stop(channel: ClientChannel, pid: number | undefined, sudo: boolean): Promise<void> {
    if (pid !== undefined && this.session?.isConnected()) {
      // dash's kill takes `-9 -PGID` but not `--`; fall back to the PID alone if it leads no group.
      const kill = `kill -9 -${pid} 2>/dev/null || kill -9 ${pid} 2>/dev/null`;
      const line = sudo ? `sudo -n /bin/sh -c ${quote(kill)}` : kill;
      await Promise.race([this.session.execCommand(line).catch(() => undefined), sleep(5_000)]);
    }
    channel.close();
  }

  async upload(from: string | Readable, to: string, options: { mode?: number } = {}): Promise<void> {
    if (!this.staged) return this.ssh().withSFTP((sftp) => uploadPath(sftp, from, to, options.mode));
    await this.withStage(async (stage) => {
      await this.ssh().withSFTP((sftp) => uploadPath(sftp, from, `${stage}/x`, options.mode));
      // Owned by the target user, as if it had written them; a directory's contents join what is already there.
      await this.asTransferUser(
        `chown -R "$1:" "$2/x" && mkdir -p "$(dirname "$3")" && if [ -d "$2/x" ]; then mkdir -p "$3" && cp -a "$2/x/." "$3/"; else mv -f "$2/x" "$3"; fi`,
        [this.transferUser, stage, to],
      );
    });
  }

  async download(from: string, to: string): Promise<void> {
    if (!this.staged) return this.ssh().withSFTP((sftp) => downloadPath(sftp, from, to));
    await this.withStage(async (stage) => {
      await this.asTransferUser(`cp -a "$2" "$3/x" && chown -R "$1:" "$3/x"`, [this.target.user, from, stage]);
      await this.ssh().withSFTP((sftp) => downloadPath(sftp, `${stage}/x`, to));
    });
  }

  private get transferUser(): string {
    return this.options.transferAs ?? this.target.user;
  }

  private get staged(): boolean {
    return this.transferUser !== this.target.user;
  }

  /** A private directory in /tmp, removed afterwards whatever happens. */
  private async withStage(work: (stage: string) => Promise<void>): Promise<void> {
    const made = await this.exec("mktemp -d /tmp/kiln-transfer-XXXXXXXX");
    if (made.exitCode !== 0) throw new KilnError("E_PROVISION", `cannot create a staging directory on ${this.id}: ${made.stderr.trim()}`);
    const stage = made.stdout.trim();
    try {
      await work(stage);
    } finally {
      await this.exec(["rm", "-rf", stage], { user: this.transferUser }).catch(() => undefined);
    }
  }

  private async asTransferUser(script: string, args: string[]): Promise<void> {
    const result = await this.exec(["/bin/sh", "-c", script, "sh", ...args], { user: this.transferUser });
    if (result.exitCode !== 0) {
      throw new KilnError(
        "E_PROVISION",
        `file transfer as ${this.transferUser} on ${this.id} failed: ${result.stderr.trim() || `exit ${result.exitCode}`}`,
        {
          hint: `the login user ${this.target.user} needs passwordless sudo`,
        },
      );
    }
  }

  /** Closes the connection. Safe to call again. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.closed = true;
    this.session?.dispose();
    this.session = undefined;
  }
}

class ConnectionLost extends Error {}

interface RemoteCommand {
  line: string;
  sudo: boolean;
  /** Sent on stdin before the command's own input: the environment, read by the shell that then execs the command. */
  stdinPrefix?: Buffer;
}

/**
 * One shell line for the login shell: it first prints its PID (the session's process group, so timeouts can kill the command),
 * then switches user with sudo and execs the command, in its directory. The environment never goes on the line (`ps` on the
 * machine would show a secret): a shell reads exactly its `export` lines from stdin, then execs the command with the rest.
 */
export function remoteCommand(cmd: string | string[], options: ExecOptions, loginUser: string): RemoteCommand {
  const argv = typeof cmd === "string" ? ["/bin/sh", "-c", cmd] : cmd;
  const exports = Object.entries(options.env ?? {}).map(([name, value]) => {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new KilnError("E_PROVISION", `invalid environment variable name "${name}"`);
    return `export ${name}=${quote(value)}\n`;
  });
  const sudo = sudoPrefix(options.user, loginUser);
  // The directory is entered after sudo, as the target user: the login user may not be allowed in (e.g. /root).
  const cd = options.cwd !== undefined ? ["/bin/sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", options.cwd] : [];
  const envScript = Buffer.from(exports.join(""));
  // dd reads one byte at a time, so not a byte of the command's own input is taken.
  const readEnv = `kiln_env=$(dd bs=1 count=${envScript.length} 2>/dev/null) && eval "$kiln_env" && unset kiln_env && exec "$@"`;
  const withEnv = exports.length > 0 ? ["/bin/sh", "-c", readEnv, "sh"] : [];
  const parts = [...withEnv, ...cd, ...argv].map(quote);
  return {
    line: `echo $$; exec ${[...sudo, ...parts].join(" ")}`,
    sudo: sudo.length > 0,
    ...(exports.length > 0 ? { stdinPrefix: envScript } : {}),
  };
}

function sudoPrefix(user: string | undefined, loginUser: string): string[] {
  if (user === undefined || user === loginUser) return [];
  if (isRoot(user)) return isRoot(loginUser) ? [] : ["sudo", "-n", "--"];
  return ["sudo", "-n", "-u", user, "--"];
}

function isRoot(name: string): boolean {
  return name === "root" || name === "0";
}

/**
 * Starts the command and hands the channel to `listen` synchronously: a fast command's output, exit status and close can arrive
 * in the same read as the exec confirmation, before a promise continuation would attach listeners.
 */
function openChannel<T>(ssh: NodeSSH, line: string, listen: (channel: ClientChannel) => T): Promise<T> {
  return new Promise((resolve, reject) => {
    const client = ssh.connection;
    if (!client) return reject(new ConnectionLost());
    client.exec(line, (error, channel) => (error ? reject(error) : resolve(listen(channel))));
  });
}

interface Outcome {
  code: number | null;
  signal: string | undefined;
}

/** Collects output, strips the PID line the wrapper prints first, and settles when the channel closes. */
function collect(channel: ClientChannel, onOutput: ExecOptions["onOutput"]) {
  const output = { stdout: "", stderr: "" };
  let pid: number | undefined;
  let head = "";
  const emit = (name: "stdout" | "stderr", text: string) => {
    if (!text) return;
    output[name] += text;
    onOutput?.(name, text);
  };
  const stdout = new StringDecoder("utf8");
  const stderr = new StringDecoder("utf8");
  channel.on("data", (chunk: Buffer) => {
    let text = stdout.write(chunk);
    if (pid === undefined) {
      head += text;
      const newline = head.indexOf("\n");
      if (newline < 0) return;
      pid = Number(head.slice(0, newline));
      text = head.slice(newline + 1);
    }
    emit("stdout", text);
  });
  channel.stderr.on("data", (chunk: Buffer) => emit("stderr", stderr.write(chunk)));
  const outcome: Outcome = { code: null, signal: undefined };
  channel.on("exit", (code: number | null, signal?: string) => {
    outcome.code = code;
    outcome.signal = signal;
  });
  const done = new Promise<Outcome>((resolve, reject) => {
    channel.on("close", () => (outcome.code === null && outcome.signal === undefined ? reject(new ConnectionLost()) : resolve(outcome)));
  });
  done.catch(() => {});
  const result = (end: Outcome): SshExecResult => {
    emit("stdout", stdout.end());
    emit("stderr", stderr.end());
    if (end.signal === undefined) return { exitCode: end.code ?? -1, ...output };
    const name = end.signal.replace(/^SIG/, "");
    const number = (constants.signals as Record<string, number | undefined>)[`SIG${name}`] ?? 0;
    emit("stderr", `command killed by signal ${name}\n`);
    return { exitCode: 128 + number, signal: name, ...output };
  };
  return { channel, done, pid: () => pid, result };
}

function writeStdin(channel: ClientChannel, stdin: ExecOptions["stdin"], prefix: Buffer | undefined): void {
  if (prefix) channel.write(prefix);
  // Without input, send EOF at once so a command that reads stdin (cat) does not wait forever.
  if (stdin === undefined) channel.end();
  else if (typeof stdin === "string" || Buffer.isBuffer(stdin)) channel.end(stdin);
  else stdin.pipe(channel);
}

/** Waits for the command; on timeout or abort, stops it and rejects with E_TIMEOUT or the abort reason. */
async function untilDone(done: Promise<Outcome>, options: ExecOptions, stop: () => Promise<void>): Promise<Outcome> {
  const controller = new AbortController();
  const timer =
    options.timeout === undefined
      ? undefined
      : setTimeout(() => controller.abort(new KilnError("E_TIMEOUT", `command timed out after ${options.timeout}ms`)), options.timeout);
  const signals = options.signal ? [controller.signal, options.signal] : [controller.signal];
  const stopped = AbortSignal.any(signals);
  try {
    return await raceAbort(done, stopped);
  } catch (error) {
    if (stopped.aborted) {
      await stop();
      throw abortReason(stopped);
    }
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

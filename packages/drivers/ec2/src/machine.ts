import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Readable } from "node:stream";
import { connectSsh, type SshExecResult, type SshMachine } from "@kiln/communicator-ssh";
import { KilnError, parseDuration, type BakeContext, type ExecOptions, type Machine, type SshConnection } from "@kiln/core";
import { knownHostsName } from "@kiln/core/kit";
import type { Access } from "./access.js";
import type { RunningInstance } from "./instance.js";
import { once } from "./once.js";
import type { Ec2Options } from "./options.js";
import { userDataErrors, waitForBootScript } from "./user-data.js";

/**
 * An EC2 instance reached over SSH. Disposing it (or `release`) closes the connection, terminates the instance (waiting until
 * it is gone) and deletes its temporary key pair and security group.
 */
export class Ec2Machine implements Machine {
  readonly id: string;
  /** Shared by every caller; a failed attempt is forgotten, so a retry (the deferred cleanups) calls EC2 again. */
  readonly release: (signal?: AbortSignal) => Promise<void>;

  constructor(
    private readonly ssh: SshMachine,
    readonly instance: RunningInstance,
    /** The private key and a known_hosts file with the pinned host key, for the attach command. */
    private readonly files: { keyFile: string; knownHosts: string },
    private readonly execUser: string,
    /** AMI name rendered at launch (the uniqueness check ran then); capture uses it. */
    readonly amiName: string,
    /** Ports the machine's security group opens to this host (a verify scenario's `ports`). */
    private readonly ports: number[],
    access: Pick<Access, "release">,
  ) {
    this.id = instance.instanceId;
    this.release = once(async (signal) => {
      await this.disconnect();
      await instance.terminate(signal);
      // The group can only go once no instance uses it, hence after the termination.
      await access.release(signal);
    });
  }

  /** The login user (`ssh_username`), the pinned host key, and sudo to root, as Kiln itself reaches the instance. */
  get connection(): SshConnection {
    return this.ssh.connection;
  }

  exec(cmd: string | string[], options: ExecOptions = {}): Promise<SshExecResult> {
    // Provisioners run as exec_user (root by default, through sudo), as they do in a container, unless a step names a user.
    return this.ssh.exec(cmd, { ...options, user: options.user ?? this.execUser });
  }

  upload(from: string | Readable, to: string, options?: { mode?: number }): Promise<void> {
    return this.ssh.upload(from, to, options);
  }

  download(from: string, to: string): Promise<void> {
    return this.ssh.download(from, to);
  }

  /** An instance has its own address: a port its group opens is reached there, as a deployment's load balancer would. */
  async hostAddress(port: number): Promise<{ host: string; port: number } | undefined> {
    return this.ports.includes(port) ? { host: this.instance.address, port } : undefined;
  }

  attachCommand(): string {
    const { host, port, user } = this.ssh.connection;
    return `ssh -i ${this.files.keyFile} -o UserKnownHostsFile=${this.files.knownHosts} -p ${port} ${user}@${host}`;
  }

  /** Closes SSH (so stopping the instance cannot break a session mid-command) without terminating the instance. */
  async disconnect(): Promise<void> {
    await this.ssh[Symbol.asyncDispose]();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }
}

/**
 * Connects over SSH to a launched instance, pinning its host key, and waits for its user data to finish when it was given
 * one (a provisioner must not race cloud-init). The private key of a temporary key pair is saved (0600, removed at the end)
 * so `--on-error=abort` can print a working ssh command.
 */
export interface ConnectOptions {
  /** AMI name rendered at launch (empty for a verify machine, which is never captured). */
  amiName: string;
  /** The instance was given user data: wait for it to finish, and fail if it failed. */
  hasUserData: boolean;
  /** Ports its security group opens to this host. */
  ports: number[];
}

export async function connectInstance(
  ctx: BakeContext,
  opts: Ec2Options,
  instance: RunningInstance,
  access: Access,
  { amiName, hasUserData, ports }: ConnectOptions,
): Promise<Ec2Machine> {
  const timeoutMs = parseDuration(opts.ssh_timeout ?? "5m");
  const ssh = await connectSsh({
    host: instance.address,
    port: opts.ssh_port ?? 22,
    user: opts.ssh_username,
    privateKey: access.privateKey,
    deadlineMs: timeoutMs,
    signal: ctx.signal,
    transferAs: opts.exec_user ?? "root",
    onRetry: (attempt) =>
      attempt % 10 === 1 && ctx.log.info(`waiting for SSH on ${opts.ssh_username}@${instance.address}:${opts.ssh_port ?? 22}`),
  });
  const files = await saveAccessFiles(ctx, instance.instanceId, opts.key_pair ? undefined : access.privateKey, ssh.connection);
  const keyFile = opts.key_pair ? await ctx.hostPath(opts.key_pair.private_key_file, "read") : files.keyFile;
  const attachFiles = { keyFile, knownHosts: files.knownHosts };
  const machine = new Ec2Machine(ssh, instance, attachFiles, opts.exec_user ?? "root", amiName, ports, access);
  if (hasUserData) {
    const waited = await ssh.exec(waitForBootScript(Math.ceil(timeoutMs / 1000)), { signal: ctx.signal });
    const errors = waited.exitCode === 0 ? userDataErrors(waited.stdout) : [waited.stderr.trim() || `exit ${waited.exitCode}`];
    if (errors.length > 0) {
      const log = await ssh.exec("tail -n 20 /var/log/cloud-init-output.log", { user: "root" }).catch(() => undefined);
      await machine.disconnect();
      throw new KilnError(
        "E_LAUNCH",
        `instance ${instance.instanceId}: user data failed: ${errors.join("; ")}${log?.stdout.trim() ? `\n${ctx.redact(log.stdout.trimEnd())}` : ""}`,
        {
          hint: "the last lines of /var/log/cloud-init-output.log are above; user data needs cloud-init (or an image that runs it at boot)",
        },
      );
    }
  }
  return machine;
}

/**
 * Saves what `--on-error=abort`'s ssh command needs, in a private directory removed at the end: the temporary key pair's
 * private key (0600) and a known_hosts file with the host key Kiln pinned, so the person attaching checks it too.
 */
async function saveAccessFiles(
  ctx: BakeContext,
  instanceId: string,
  privateKey: string | undefined,
  connection: SshConnection,
): Promise<{ keyFile: string; knownHosts: string }> {
  const dir = await mkdtemp(join(tmpdir(), `kiln-${ctx.runId}-`));
  ctx.defer(() => rm(dir, { recursive: true, force: true }), { resource: `key files in ${dir}` });
  const keyFile = join(dir, `${instanceId}.pem`);
  if (privateKey !== undefined) await writeFile(keyFile, privateKey, { mode: 0o600 });
  const knownHosts = join(dir, "known_hosts");
  await writeFile(knownHosts, `${knownHostsName(connection.host, connection.port)} ${connection.hostKey}\n`, { mode: 0o600 });
  return { keyFile, knownHosts };
}

import { access, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import type { SshExecResult, SshMachine } from "@kiln/communicator-ssh";
import type { ExecOptions, Machine, SshConnection } from "@kiln/core";
import { libvirtResources, removeDomain, removePool } from "./libvirt.js";
import { vagrant, vagrantDestroy } from "./vagrant.js";

/** A VM a bake brought up: its Vagrant project, its storage pool, and the box added for it (if any). */
export interface VagrantVm {
  /** `kiln-<run>-<image>-<role>-<random>`: the pool's name and the prefix of the domain's. */
  name: string;
  /** The Kiln-owned Vagrant project directory (Vagrantfile, `.vagrant/`, the pool's files). */
  project: string;
  uri: string;
  /** A box added only for this VM, removed with it. */
  addedBox?: string;
  /** The installed box's directory (its Vagrantfile, disk, kernel), once known. */
  boxDir?: string;
}

/** The libvirt domain's UUID, as vagrant-libvirt recorded it. */
export async function domainId(vm: VagrantVm): Promise<string> {
  return (await readFile(join(vm.project, ".vagrant", "machines", "default", "libvirt", "id"), "utf8")).trim();
}

/**
 * Removes everything the VM had: `vagrant destroy -f` (domain, its disk, the management network when unused), then what a
 * destroy that failed or never ran leaves — domains by name, the pool with the box's volume — the box added for the bake,
 * and the project directory. Safe to run twice.
 */
export async function destroyVm(vm: VagrantVm): Promise<void> {
  const project = await access(join(vm.project, "Vagrantfile")).then(
    () => true,
    () => false,
  );
  if (project) await vagrantDestroy(vm.project).catch(() => undefined);
  const left = await libvirtResources(vm.uri, vm.name);
  for (const domain of left.domains) await removeDomain(vm.uri, domain);
  if (vm.addedBox)
    await vagrant(["box", "remove", "--force", "--all", vm.addedBox], { cwd: tmpdir(), code: "E_CLEANUP" }).catch((error: Error) => {
      if (!/could not be found|not installed/i.test(error.message)) throw error;
    });
  await removePool(vm.uri, vm.name);
  await rm(vm.project, { recursive: true, force: true });
}

/** A Vagrant VM reached over SSH as the box's user; commands run as root through sudo unless a step names a user. */
export class VagrantMachine implements Machine {
  readonly id: string;
  private disposed: Promise<void> | undefined;

  constructor(
    private readonly ssh: SshMachine,
    readonly vm: VagrantVm,
    /** A verify VM's runtime environment, as a deployed process would see it. */
    private readonly env: Record<string, string> = {},
  ) {
    this.id = vm.name;
  }

  get connection(): SshConnection {
    return this.ssh.connection;
  }

  exec(cmd: string | string[], options: ExecOptions = {}): Promise<SshExecResult> {
    return this.ssh.exec(cmd, { ...options, env: { ...this.env, ...options.env }, user: options.user ?? "root" });
  }

  upload(from: string | Readable, to: string, options?: { mode?: number }): Promise<void> {
    return this.ssh.upload(from, to, options);
  }

  download(from: string, to: string): Promise<void> {
    return this.ssh.download(from, to);
  }

  /** The VM has its own address on vagrant-libvirt's management network, which this host reaches. */
  async hostAddress(port: number): Promise<{ host: string; port: number }> {
    return { host: this.ssh.connection.host, port };
  }

  attachCommand(): string {
    const home = process.env.VAGRANT_HOME ? `VAGRANT_HOME=${process.env.VAGRANT_HOME} ` : "";
    return `cd ${this.vm.project} && ${home}vagrant ssh`;
  }

  /** Closes SSH, so a shutdown cannot break a session mid-command; the VM stays. */
  async disconnect(): Promise<void> {
    await this.ssh[Symbol.asyncDispose]();
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.disposed ??= this.disconnect()
      .then(() => destroyVm(this.vm))
      .catch((error: unknown) => {
        // Forgotten when it fails, so a retry tries again.
        this.disposed = undefined;
        throw error;
      });
    return this.disposed;
  }
}

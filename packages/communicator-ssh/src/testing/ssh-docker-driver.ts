import { randomBytes } from "node:crypto";
import type { Readable } from "node:stream";
import {
  defineDriver,
  KilnError,
  LABELS,
  type Artifact,
  type BakeContext,
  type ExecOptions,
  type Machine,
  type SshConnection,
  type StandardSchemaV1,
} from "@kiln/core";
import { connectSsh, type SshExecResult, type SshMachine } from "../ssh.js";
import { docker, ensureSshdImage, generateKeyPair, startSshd, type SshdContainer } from "./sshd.js";

/**
 * A test-only driver whose machines are sshd containers reached only through {@link SshMachine}: it lets the communicator run
 * the same conformance suite real drivers run. Docker is used to create, commit and remove containers — never to run commands.
 */
export interface SshDockerOptions {
  /** Image with sshd (see `ensureSshdImage`). */
  source: string;
  /**
   * Login user: `root` (default), or `kiln`, a user with passwordless sudo — as on EC2 and Vagrant, where commands and file
   * transfers reach root through `sudo -n`.
   */
  login?: "root" | "kiln";
}

const schema: StandardSchemaV1<unknown, SshDockerOptions> = {
  "~standard": {
    version: 1,
    vendor: "kiln-test",
    validate(value) {
      const input = value as Record<string, unknown> | null;
      if (typeof input !== "object" || input === null || typeof input.source !== "string")
        return { issues: [{ message: "source must be an image" }] };
      const unknown = Object.keys(input).filter((key) => key !== "source" && key !== "login");
      if (unknown.length > 0) return { issues: unknown.map((key) => ({ message: `unknown option "${key}"`, path: [key] })) };
      if (input.login !== undefined && input.login !== "root" && input.login !== "kiln")
        return { issues: [{ message: 'login must be "root" or "kiln"', path: ["login"] }] };
      return { value: { source: input.source, ...(input.login ? { login: input.login } : {}) } };
    },
  },
};

export const sshDocker = defineDriver<SshDockerOptions>(() => ({
  name: "ssh-docker",
  schema,
  runtimeSupport: {},
  connectionKinds: ["ssh"],

  async resolveSource(ctx, opts) {
    if (ctx.parent) return { id: ctx.parent.id, description: ctx.parent.image };
    const info = await docker.getImage(opts.source).inspect();
    return { id: info.Id, description: opts.source };
  },

  async launch(ctx, source, opts) {
    return launchMachine(ctx, source.id, {}, opts.login ?? "root");
  },

  async capture(ctx, machine, target) {
    const container = docker.getContainer(containerOf(machine));
    const config = (await container.inspect()).Config;
    const result = (await container.commit({
      _query: { container: container.id, pause: true },
      _body: { Cmd: config.Cmd, Env: config.Env, ExposedPorts: config.ExposedPorts, Labels: target.labels },
    })) as { Id: string };
    ctx.defer(() => removeImage(result.Id), { when: "failure", resource: `image ${result.Id}` });
    return { id: result.Id, driver: "ssh-docker", image: ctx.image, tags: [], labels: target.labels, created: new Date().toISOString() };
  },

  async launchArtifact(ctx, artifact, runtime, opts) {
    // Like the EC2 driver's user data: runtime env reaches the login's sessions through sshd's SetEnv, and commands run through
    // sudo (which resets the environment) through /etc/environment named as sudo's env_file; files are written before boot.
    const entries = Object.entries(runtime.env ?? {});
    const setEnv = entries.map(([key, value]) => `SetEnv ${key}="${value}"\n`).join("");
    const environment = entries.map(([key, value]) => `${key}="${value}"\n`).join("");
    const files = {
      ...runtime.files,
      "/etc/ssh/sshd_config.d/kiln-runtime.conf": { content: setEnv, mode: 0o644 },
      ...(entries.length > 0
        ? {
            "/etc/environment": { content: environment, mode: 0o644 },
            "/etc/sudoers.d/kiln-runtime-env": { content: "Defaults env_file=/etc/environment\n", mode: 0o440 },
          }
        : {}),
    };
    return launchMachine(ctx, artifact.id, files, opts.login ?? "root");
  },

  async findArtifacts(query) {
    const wanted = Object.entries(query.labels ?? {});
    const matches = (labels: Record<string, string>) =>
      wanted.every(([key, value]) => (value === undefined ? key in labels : labels[key] === value));
    if (query.ref !== undefined) {
      const info = await docker
        .getImage(query.ref)
        .inspect()
        .catch(() => undefined);
      return info && matches(info.Config?.Labels ?? {}) ? [toArtifact(info.Id, info.RepoTags, info.Config?.Labels ?? {})] : [];
    }
    const filters = wanted.map(([key, value]) => (value === undefined ? key : `${key}=${value}`));
    const images = await docker.listImages({ all: true, filters: { label: filters } });
    return images.map((image) => toArtifact(image.Id, image.RepoTags, image.Labels ?? {}));
  },

  async tag(artifact, reference) {
    const at = reference.lastIndexOf(":");
    await docker.getImage(artifact.id).tag({ repo: reference.slice(0, at), tag: reference.slice(at + 1) });
  },

  async remove(artifact) {
    await removeImage(artifact.id);
  },
}));

export async function sshDockerOptions(login: SshDockerOptions["login"] = "root"): Promise<Record<string, unknown> & SshDockerOptions> {
  return { source: await ensureSshdImage(), login };
}

async function launchMachine(
  ctx: BakeContext,
  image: string,
  files: Record<string, { content: string; mode?: number | undefined }>,
  login: "root" | "kiln",
): Promise<Machine> {
  const keys = generateKeyPair();
  const runId = ctx.resourceLabels[LABELS.build] ?? ctx.runId;
  const name = `kiln-${runId}-${ctx.image.replace(/[^A-Za-z0-9_.-]/g, "-")}-${randomBytes(2).toString("hex")}`;
  // By its unique name, before it exists: a launch abandoned on Ctrl-C still has its container removed.
  ctx.defer(() => removeContainer(name), { resource: `container ${name}`, manualCommand: `docker rm -f ${name}` });
  const server = await startSshd({ runId, name, labels: { ...ctx.resourceLabels }, image, publicKey: keys.publicKey, files });
  const ssh = await connectSsh({
    host: server.host,
    port: server.port,
    user: login,
    privateKey: keys.privateKey,
    deadlineMs: 60_000,
    signal: ctx.signal,
    ...(login === "root" ? {} : { transferAs: "root" }),
  });
  return new SshContainerMachine(ssh, server);
}

/**
 * The driver's machine: commands and files over SSH, as root (through sudo for a non-root login, like EC2's `exec_user`)
 * unless a command names a user; disposing it also removes the container (the communicator never does).
 */
class SshContainerMachine implements Machine {
  readonly id: string;
  private disposed: Promise<void> | undefined;

  constructor(
    private readonly ssh: SshMachine,
    readonly server: SshdContainer,
  ) {
    this.id = server.id;
  }

  get connection(): SshConnection {
    return this.ssh.connection;
  }

  exec(cmd: string | string[], options: ExecOptions = {}): Promise<SshExecResult> {
    return this.ssh.exec(cmd, { ...options, user: options.user ?? "root" });
  }

  upload(from: string | Readable, to: string, options?: { mode?: number }): Promise<void> {
    return this.ssh.upload(from, to, options);
  }

  download(from: string, to: string): Promise<void> {
    return this.ssh.download(from, to);
  }

  attachCommand(): string {
    return this.ssh.attachCommand();
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.disposed ??= this.ssh[Symbol.asyncDispose]().then(() => this.server.remove());
    return this.disposed;
  }
}

function containerOf(machine: Machine): string {
  if (machine instanceof SshContainerMachine) return machine.server.id;
  throw new KilnError("E_CAPTURE", `machine ${machine.id} was not launched by the ssh-docker driver`);
}

async function removeContainer(name: string): Promise<void> {
  await docker
    .getContainer(name)
    .remove({ force: true, v: true })
    .catch((error: { statusCode?: number }) => {
      if (error.statusCode !== 404 && error.statusCode !== 409) throw error;
    });
}

async function removeImage(id: string): Promise<void> {
  await docker
    .getImage(id)
    .remove({ force: true })
    .catch((error: { statusCode?: number }) => {
      if (error.statusCode !== 404) throw error;
    });
}

function toArtifact(id: string, repoTags: string[] | undefined, labels: Record<string, string>): Artifact {
  const tags = (repoTags ?? []).filter((tag) => tag !== "<none>:<none>");
  return { id, driver: "ssh-docker", image: labels[LABELS.image] ?? "", tags, labels };
}

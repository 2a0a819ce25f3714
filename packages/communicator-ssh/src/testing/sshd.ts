import { randomBytes } from "node:crypto";
import { debootstrapImage } from "@kiln/driver-docker/testing";
import Docker from "dockerode";
import { utils } from "ssh2";
import tarStream from "tar-stream";
import { LABELS } from "@kiln/core";

/** Debian bookworm minbase + python3, openssh-server and sudo, with a `kiln` user that has passwordless sudo. */
export const SSHD_IMAGE = "kiln-fixture/sshd:bookworm";

/**
 * PID 1 of every sshd container: fresh host keys on first start, then sshd in the foreground, restarted when it dies — so a test
 * can kill every process (a "reboot" as far as the client can tell) and see sshd come back on the same address.
 */
const START_SCRIPT = `#!/bin/sh
mkdir -p /run/sshd
ssh-keygen -A >/dev/null
while :; do /usr/sbin/sshd -D -e; sleep 2; done
`;

const SETUP = [
  "set -e",
  "useradd -m -s /bin/sh kiln",
  "echo 'kiln ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/kiln",
  "chmod 0440 /etc/sudoers.d/kiln",
  // Each container generates its own host keys at start, so two containers never share one.
  "rm -f /etc/ssh/ssh_host_*",
  "chmod 0755 /usr/local/sbin/kiln-sshd",
].join("\n");

export const docker = new Docker();

let building: Promise<string> | undefined;

/** Builds {@link SSHD_IMAGE} once per machine (the debootstrap tree is cached by its recipe). */
export function ensureSshdImage(): Promise<string> {
  building ??= buildSshdImage();
  return building;
}

async function buildSshdImage(): Promise<string> {
  const exists = await docker
    .getImage(SSHD_IMAGE)
    .inspect()
    .then(
      () => true,
      () => false,
    );
  if (exists) return SSHD_IMAGE;
  const base = await debootstrapImage(docker, { suite: "bookworm", variant: "minbase", include: ["python3", "openssh-server", "sudo"] });
  const runId = `sshd-fixture-${randomBytes(4).toString("hex")}`;
  const container = await docker.createContainer({ Image: base.id, Cmd: ["/bin/sh", "-c", SETUP], Labels: { [LABELS.build]: runId } });
  try {
    await container.putArchive(
      filesArchive({ "/usr/local/sbin/kiln-sshd": { content: START_SCRIPT, mode: 0o755 } }) as unknown as NodeJS.ReadableStream,
      { path: "/" },
    );
    await container.start();
    const { StatusCode } = (await container.wait()) as { StatusCode: number };
    if (StatusCode !== 0)
      throw new Error(`sshd fixture setup failed with ${StatusCode}: ${(await container.logs({ stdout: true, stderr: true })).toString()}`);
    const [repo, tag] = SSHD_IMAGE.split(":") as [string, string];
    const config = (await docker.getImage(base.id).inspect()).Config;
    // Commit merges the setup container's labels in; blank its run id so this shared, cached fixture is not taken for a leak.
    await container.commit({
      _query: { container: container.id, repo, tag },
      _body: { Cmd: ["/usr/local/sbin/kiln-sshd"], Env: config?.Env ?? [], Labels: { ...config?.Labels, [LABELS.build]: "" } },
    });
  } finally {
    await container.remove({ force: true });
  }
  return SSHD_IMAGE;
}

export interface KeyPair {
  /** OpenSSH private key text. */
  privateKey: string;
  /** `ssh-ed25519 AAAA… comment` line for authorized_keys. */
  publicKey: string;
}

/**
 * ssh2's generator drops a leading zero byte of the ed25519 public key (about 1 key in 170), and the result cannot be parsed back;
 * draw again until the key parses. (PKCS#8 PEM from node:crypto is no way out: ssh2 does not read ed25519 keys in that format.)
 */
export function generateKeyPair(): KeyPair {
  for (;;) {
    const { private: privateKey, public: publicKey } = utils.generateKeyPairSync("ed25519", { comment: "kiln-test" });
    if (!(utils.parseKey(privateKey) instanceof Error)) return { privateKey, publicKey };
  }
}

export interface SshdContainerOptions {
  runId: string;
  /** Container name. Default: one the engine picks. */
  name?: string;
  /** More labels for the container (a bake's resource labels). */
  labels?: Record<string, string>;
  publicKey: string;
  /** Host port to publish 22 on; default: one the engine picks. */
  hostPort?: number;
  image?: string;
  env?: Record<string, string>;
  /** Extra files written before start: path → content and mode. */
  files?: Record<string, { content: string; mode?: number | undefined }>;
}

export interface SshdContainer extends AsyncDisposable {
  id: string;
  host: string;
  port: number;
  remove(): Promise<void>;
}

/** Starts an sshd container with `publicKey` authorized for root and kiln, port 22 published on 127.0.0.1. Does not wait for sshd. */
export async function startSshd(options: SshdContainerOptions): Promise<SshdContainer> {
  const container = await docker.createContainer({
    ...(options.name ? { name: options.name } : {}),
    Image: options.image ?? (await ensureSshdImage()),
    Labels: { ...options.labels, [LABELS.build]: options.runId },
    Env: Object.entries(options.env ?? {}).map(([key, value]) => `${key}=${value}`),
    ExposedPorts: { "22/tcp": {} },
    HostConfig: { PortBindings: { "22/tcp": [{ HostIp: "127.0.0.1", HostPort: options.hostPort ? String(options.hostPort) : "" }] } },
  });
  const remove = () => container.remove({ force: true, v: true }).catch(() => {});
  try {
    const authorized = { content: `${options.publicKey}\n`, mode: 0o600 };
    const files = { "/root/.ssh/authorized_keys": authorized, ...options.files };
    await container.putArchive(filesArchive(files) as unknown as NodeJS.ReadableStream, { path: "/" });
    await container.start();
    // kiln's home exists in the image; its key is set up by root at start-up time through an exec.
    await run(
      container,
      `mkdir -p /home/kiln/.ssh && cp /root/.ssh/authorized_keys /home/kiln/.ssh/ && chown -R kiln:kiln /home/kiln/.ssh && chmod 700 /home/kiln/.ssh`,
    );
    const info = await container.inspect();
    const port = Number(info.NetworkSettings.Ports["22/tcp"]?.[0]?.HostPort);
    return { id: container.id, host: "127.0.0.1", port, remove, [Symbol.asyncDispose]: remove };
  } catch (error) {
    await remove();
    throw error;
  }
}

async function run(container: Docker.Container, script: string): Promise<void> {
  const exec = await container.exec({ Cmd: ["/bin/sh", "-c", script], AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({});
  await new Promise((resolve) => {
    stream.on("end", resolve);
    stream.resume();
  });
  const { ExitCode } = await exec.inspect();
  if (ExitCode !== 0) throw new Error(`container setup failed (${ExitCode}): ${script}`);
}

export function filesArchive(files: Record<string, { content: string; mode?: number | undefined }>): tarStream.Pack {
  const pack = tarStream.pack();
  for (const [path, file] of Object.entries(files)) pack.entry({ name: path.replace(/^\/+/, ""), mode: file.mode ?? 0o644 }, file.content);
  pack.finalize();
  return pack;
}

import { createServer } from "node:net";
import type Docker from "dockerode";
import tarStream from "tar-stream";

export const LABEL_BUILD = "dev.kiln.build";
export const LABEL_EMULATOR = "dev.kiln.ec2-emulator";
export const LABEL_INSTANCE = "dev.kiln.ec2-instance-id";

/**
 * PID 1 of every instance, whatever its AMI's image: fresh host keys (like cloud-init), the launch key authorized for root and
 * `admin` (when the image has that user), sshd kept running in the background, and then the user-data script, if any. User data
 * runs AFTER sshd is up, as on EC2, where cloud-init's scripts-user stage runs late in boot: a client may log in while it still
 * runs. Its output goes to /var/log/cloud-init-output.log, where EC2 puts it too. Host keys are removed first and the script is
 * moved aside once it ran, because CreateImage commits the container: an instance of that AMI must neither share the original's
 * host keys nor rerun its user data.
 */
const BOOT_SCRIPT = `#!/bin/sh
mkdir -p /run/sshd
rm -f /etc/ssh/ssh_host_*
ssh-keygen -A >/dev/null 2>&1
if id admin >/dev/null 2>&1; then
  mkdir -p /home/admin/.ssh && cp /root/.ssh/authorized_keys /home/admin/.ssh/ 2>/dev/null
  chown -R admin:admin /home/admin/.ssh && chmod 700 /home/admin/.ssh
fi
(while :; do /usr/sbin/sshd -D -e; sleep 1; done) &
if [ -f /var/lib/cloud/instance/user-data.txt ]; then
  chmod 0700 /var/lib/cloud/instance/user-data.txt
  /var/lib/cloud/instance/user-data.txt >/var/log/cloud-init-output.log 2>&1
  echo "user-data exited with $?" >>/var/log/cloud-init-output.log
  mv /var/lib/cloud/instance/user-data.txt /var/lib/cloud/instance/user-data.txt.done
fi
wait
`;

export interface LaunchContainerOptions {
  image: string;
  runId: string;
  instanceId: string;
  ipAddress: string;
  publicKey: string | undefined;
  /** Decoded user data; run at boot only when it starts with `#!`. */
  userData: string | undefined;
}

/** Creates and starts an instance's container; the caller picks the address. Removes the container if any step fails. */
export async function launchContainer(docker: Docker, options: LaunchContainerOptions): Promise<Docker.Container> {
  const container = await docker.createContainer({
    Image: options.image,
    Entrypoint: ["/bin/sh", "/usr/local/sbin/kiln-ec2-boot"],
    Cmd: [],
    Hostname: `ip-${options.ipAddress.replace(/\./g, "-")}`,
    Labels: { [LABEL_BUILD]: options.runId, [LABEL_EMULATOR]: "1", [LABEL_INSTANCE]: options.instanceId },
    ExposedPorts: { "22/tcp": {} },
    HostConfig: { PortBindings: { "22/tcp": [{ HostIp: options.ipAddress, HostPort: "22" }] } },
  });
  try {
    const files: Record<string, FileEntry> = { "/usr/local/sbin/kiln-ec2-boot": { content: BOOT_SCRIPT, mode: 0o755 } };
    if (options.publicKey) files["/root/.ssh/authorized_keys"] = { content: `${options.publicKey}\n`, mode: 0o600 };
    if (options.userData?.startsWith("#!")) files["/var/lib/cloud/instance/user-data.txt"] = { content: options.userData, mode: 0o700 };
    await container.putArchive(filesArchive(files) as unknown as NodeJS.ReadableStream, { path: "/" });
    await container.start();
    return container;
  } catch (error) {
    await container.remove({ force: true, v: true }).catch(() => {});
    throw error;
  }
}

export interface FileEntry {
  content: string;
  mode?: number;
}

/** A tar stream of files (a .ssh parent gets mode 0700, as sshd's StrictModes wants). */
export function filesArchive(files: Record<string, FileEntry>): tarStream.Pack {
  const pack = tarStream.pack();
  const dirs = new Set<string>();
  // Other parents are created by the engine; only .ssh needs a stricter mode than its default.
  for (const path of Object.keys(files)) {
    const dir = path.replace(/^\/+/, "").split("/").slice(0, -1).join("/");
    if (dir.endsWith(".ssh")) dirs.add(dir);
  }
  for (const dir of dirs) pack.entry({ name: `${dir}/`, type: "directory", mode: 0o700 });
  for (const [path, file] of Object.entries(files)) pack.entry({ name: path.replace(/^\/+/, ""), mode: file.mode ?? 0o644 }, file.content);
  pack.finalize();
  return pack;
}

/** True when nothing listens on address:22 yet (another emulator's instance, or a host sshd on 0.0.0.0). */
export function portFree(address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen({ host: address, port: 22, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** Removes every container this emulator run started (by label), including ones whose launch was cut short. */
export async function removeRunContainers(docker: Docker, runId: string): Promise<void> {
  const containers = await docker.listContainers({ all: true, filters: { label: [`${LABEL_BUILD}=${runId}`, `${LABEL_EMULATOR}=1`] } });
  await Promise.all(containers.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => {})));
}

import { createServer, type Server } from "node:net";
import type Docker from "dockerode";
import tarStream from "tar-stream";
import type { UserDataParts } from "./user-data.js";

export const LABEL_BUILD = "dev.kiln.build";
export const LABEL_EMULATOR = "dev.kiln.ec2-emulator";
export const LABEL_INSTANCE = "dev.kiln.ec2-instance-id";

/** Where the boot script keeps an instance's state, as cloud-init does (`/var/lib/cloud/instance` links to its own one). */
const instanceDir = (instanceId: string): string => `/var/lib/cloud/instances/${instanceId}`;

/** cloud-init's NoCloud seed directory: meta-data and user-data, written into every instance at launch. */
const NOCLOUD_SEED = "/var/lib/cloud/seed/nocloud";

/**
 * What makes cloud-init fit a container whose host keys, hostname and network the emulator owns, kept valid for cloud-init's schema
 * (newer cloud-init reports schema warnings as a degraded `cloud-init status`): `ssh_genkeytypes` may not be empty, so it lists the
 * types the boot script's `ssh-keygen -A` made, which cloud-init then leaves alone (it only generates missing ones; its default
 * would add DSA); `locale` takes a string, and "false" turns cc_locale off (minbase has no locales: it would fail and
 * `cloud-init status` say error); the root file system is an overlay that cc_growpart and cc_resizefs cannot grow.
 */
const CLOUD_CFG = `# Written by kiln-ec2-emulator at launch: the emulator owns this container's host keys, hostname and network.
datasource_list: [NoCloud]
ssh_deletekeys: false
ssh_genkeytypes: [rsa, ecdsa, ed25519]
network: {config: disabled}
preserve_hostname: true
manage_etc_hosts: false
locale: "false"
growpart: {mode: "off"}
resize_rootfs: false
`;

/**
 * PID 1 of every instance, whatever its AMI's image, on every boot; its argument is the instance id. Every boot starts like a
 * reboot (no /run/cloud-init, no boot-finished). Once per instance (cloud-init's per-instance semaphores, under the instance's own
 * directory, so an AMI committed from another instance does not count): fresh host keys. Every boot: the launch key authorized
 * for root and `admin` (when the image has that user) and sshd kept running in the background. Then user data, AFTER sshd is up,
 * as on EC2, where cloud-init's scripts-user stage runs late in boot (a client may log in while it still runs):
 * - when the image has cloud-init at the instance's first boot, cloud-init's four stages run on every boot, reading the NoCloud
 *   seed written at launch; cloud-init keeps its own per-instance state (by instance id), logs to
 *   /var/log/cloud-init-output.log and writes boot-finished itself;
 * - otherwise the emulator's own runner runs the user-data scripts once per instance (their output goes to
 *   /var/log/cloud-init-output.log, where EC2 puts it too), and every boot ends with boot-finished, which a client waits for.
 * The choice is recorded in the user-data semaphore, set before the scripts run, so an instance stopped halfway through does not
 * run them again on its next start. The emulator's semaphores are named `kiln_…` with underscores: cloud-init's migrator module
 * renames any with dashes.
 */
const BOOT_SCRIPT = `#!/bin/sh
instance_id="$1"
dir="/var/lib/cloud/instances/$instance_id"
log=/var/log/cloud-init-output.log
rm -rf /run/cloud-init
rm -f "$dir/boot-finished"
mkdir -p "$dir/sem" /run/sshd
if [ ! -e "$dir/sem/kiln_host_keys" ]; then
  rm -f /etc/ssh/ssh_host_*
  ssh-keygen -A >/dev/null 2>&1
  touch "$dir/sem/kiln_host_keys"
fi
[ -L /var/lib/cloud/instance ] || rm -rf /var/lib/cloud/instance
ln -sfn "$dir" /var/lib/cloud/instance
if id admin >/dev/null 2>&1; then
  mkdir -p /home/admin/.ssh && cp /root/.ssh/authorized_keys /home/admin/.ssh/ 2>/dev/null
  chown -R admin:admin /home/admin/.ssh && chmod 700 /home/admin/.ssh
fi
(while :; do /usr/sbin/sshd -D -e; sleep 1; done) &
if [ ! -e "$dir/sem/kiln_user_data" ]; then
  runner=kiln-ec2-emulator
  command -v cloud-init >/dev/null 2>&1 && runner=cloud-init
  echo "$runner" >"$dir/sem/kiln_user_data"
  if [ "$runner" = kiln-ec2-emulator ]; then
    [ -f "$dir/kiln-user-data/notes.txt" ] && cat "$dir/kiln-user-data/notes.txt" >>"$log"
    errors=""
    for part in "$dir"/kiln-user-data/part-*; do
      [ -f "$part" ] || continue
      chmod 0700 "$part"
      "$part" >>"$log" 2>&1
      code=$?
      echo "user-data \${part##*/} exited with $code" >>"$log"
      [ "$code" -eq 0 ] || errors="$errors\${errors:+, }\\"user-data \${part##*/} exited with $code\\""
    done
    mkdir -p /var/lib/cloud/data
    printf '{"v1": {"datasource": "DataSourceNoCloud", "errors": [%s]}}\n' "$errors" >/var/lib/cloud/data/result.json
  fi
fi
if [ "$(cat "$dir/sem/kiln_user_data")" = cloud-init ] && command -v cloud-init >/dev/null 2>&1; then
  cloud-init init --local
  cloud-init init
  cloud-init modules --mode=config
  cloud-init modules --mode=final
else
  echo "$(cut -d' ' -f1 /proc/uptime) - $(date -R) - v. kiln-ec2-emulator" >"$dir/boot-finished"
fi
wait
`;

export interface LaunchContainerOptions {
  image: string;
  runId: string;
  instanceId: string;
  ipAddress: string;
  publicKey: string | undefined;
  /** User data as worked out at RunInstances: its scripts and notes go into the instance's own directory. */
  userData: UserDataParts;
  /** User data as given (empty when none): the NoCloud seed's user-data. */
  rawUserData: Buffer;
  /** TCP ports besides 22 to publish on the instance's address: what its security groups open. */
  ports: number[];
}

/** Creates and starts an instance's container; the caller picks the address. Removes the container if any step fails. */
export async function launchContainer(docker: Docker, options: LaunchContainerOptions): Promise<Docker.Container> {
  const hostname = `ip-${options.ipAddress.replace(/\./g, "-")}`;
  const published = [...new Set([22, ...options.ports])];
  const container = await docker.createContainer({
    Image: options.image,
    Entrypoint: ["/bin/sh", "/usr/local/sbin/kiln-ec2-boot"],
    Cmd: [options.instanceId],
    Hostname: hostname,
    Labels: { [LABEL_BUILD]: options.runId, [LABEL_EMULATOR]: "1", [LABEL_INSTANCE]: options.instanceId },
    ExposedPorts: Object.fromEntries(published.map((port) => [`${port}/tcp`, {}])),
    HostConfig: {
      PortBindings: Object.fromEntries(published.map((port) => [`${port}/tcp`, [{ HostIp: options.ipAddress, HostPort: String(port) }]])),
    },
  });
  try {
    const dir = instanceDir(options.instanceId);
    const files: Record<string, FileEntry> = {
      "/usr/local/sbin/kiln-ec2-boot": { content: BOOT_SCRIPT, mode: 0o755 },
      // Every image gets the seed (harmless without cloud-init). An instance of an AMI committed from another instance gets its
      // own instance id here, so cloud-init takes it for a new instance, as on EC2.
      [`${NOCLOUD_SEED}/meta-data`]: { content: `instance-id: ${options.instanceId}\nlocal-hostname: ${hostname}\n` },
      [`${NOCLOUD_SEED}/user-data`]: { content: options.rawUserData, mode: 0o600 },
      "/etc/cloud/cloud.cfg.d/99-kiln-emulator.cfg": { content: CLOUD_CFG },
    };
    if (options.publicKey) files["/root/.ssh/authorized_keys"] = { content: `${options.publicKey}\n`, mode: 0o600 };
    // part-001, part-002, …: the glob in the boot script runs them in this order. Not under the instance's scripts/, which is
    // cloud-init's scripts-user directory.
    options.userData.scripts.forEach((script, index) => {
      files[`${dir}/kiln-user-data/part-${String(index + 1).padStart(3, "0")}`] = { content: script, mode: 0o700 };
    });
    if (options.userData.notes.length > 0) files[`${dir}/kiln-user-data/notes.txt`] = { content: `${options.userData.notes.join("\n")}\n` };
    await container.putArchive(filesArchive(files) as unknown as NodeJS.ReadableStream, { path: "/" });
    await container.start();
    return container;
  } catch (error) {
    await container.remove({ force: true, v: true }).catch(() => {});
    throw error;
  }
}

export interface FileEntry {
  content: string | Buffer;
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

/**
 * Listens on address:22 while an instance is stopped (its container released the port), so that another emulator on this host
 * (a parallel test file) does not take the address the instance gets back on StartInstances. Connections are dropped at once,
 * much like a stopped instance's. Undefined when the address cannot be held (then the start may find it taken).
 */
export function holdAddress(address: string): Promise<Server | undefined> {
  return new Promise((resolve) => {
    const server = createServer((socket) => socket.destroy());
    server.once("error", () => resolve(undefined));
    server.listen({ host: address, port: 22, exclusive: true }, () => resolve(server.unref()));
  });
}

/** Removes every container this emulator run started (by label), including ones whose launch was cut short. */
export async function removeRunContainers(docker: Docker, runId: string): Promise<void> {
  const containers = await docker.listContainers({ all: true, filters: { label: [`${LABEL_BUILD}=${runId}`, `${LABEL_EMULATOR}=1`] } });
  await Promise.all(
    containers.map((c) =>
      docker
        .getContainer(c.Id)
        .remove({ force: true, v: true })
        .catch(() => {}),
    ),
  );
}

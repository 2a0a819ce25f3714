import { randomBytes } from "node:crypto";
import { debootstrapImage } from "@kiln/driver-docker/testing";
import type Docker from "dockerode";
import { LABEL_BUILD } from "./container.js";

/** The Docker image behind the seeded base AMI: Debian bookworm minbase with python3, openssh-server, sudo and an `admin` user. */
export const BASE_DOCKER_IMAGE = "kiln-ec2-emulator/debian12:bookworm";

/** The Docker image behind the seeded cloud-init AMI: {@link BASE_DOCKER_IMAGE} plus Debian's cloud-init package. */
export const CLOUD_INIT_DOCKER_IMAGE = "kiln-ec2-emulator/debian12-cloud-init:bookworm";

/** Same packages as communicator-ssh's sshd fixture, so both share one cached debootstrap tree. */
const BASE_SETUP = [
  "set -e",
  "id admin >/dev/null 2>&1 || useradd -m -s /bin/bash admin",
  "echo 'admin ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/admin",
  "chmod 0440 /etc/sudoers.d/admin",
  // Every instance generates its own host keys at boot, as cloud-init does, so two instances never share one.
  "rm -f /etc/ssh/ssh_host_*",
].join("\n");

/**
 * cloud-init from Debian's mirror (the only network a build may need), without recommends, and no apt lists left behind. Debian's
 * EC2 AMIs rename cloud-init's default user (Debian's package calls it `debian`) to `admin` in 01_debian_cloud.cfg: so here too.
 */
const CLOUD_INIT_SETUP = [
  "set -e",
  "export DEBIAN_FRONTEND=noninteractive",
  "apt-get update",
  "apt-get install -y --no-install-recommends cloud-init",
  "apt-get clean",
  "rm -rf /var/lib/apt/lists/*",
  "printf 'system_info:\\n  default_user:\\n    name: admin\\n' > /etc/cloud/cloud.cfg.d/01_debian_cloud.cfg",
  "rm -f /etc/ssh/ssh_host_*",
].join("\n");

const building = new Map<string, Promise<string>>();

/**
 * Builds `reference` once per process, and not at all when the engine has it already (a failed build may be retried). Processes
 * building at once each commit (the last tag wins), so a test run builds the base image in its global setup, before the workers
 * start; the cloud-init image is built by the one test file that launches it.
 */
function ensureImage(docker: Docker, reference: string, build: () => Promise<void>): Promise<string> {
  let pending = building.get(reference);
  if (!pending) {
    pending = (async () => {
      const exists = await docker
        .getImage(reference)
        .inspect()
        .then(
          () => true,
          () => false,
        );
      if (!exists) await build();
      return reference;
    })();
    building.set(reference, pending);
    pending.catch(() => building.delete(reference));
  }
  return pending;
}

/** Builds {@link BASE_DOCKER_IMAGE} once per machine (about a minute the first time; the debootstrap tree is cached). */
export function ensureBaseImage(docker: Docker): Promise<string> {
  return ensureImage(docker, BASE_DOCKER_IMAGE, async () => {
    const base = await debootstrapImage(docker, { suite: "bookworm", variant: "minbase", include: ["python3", "openssh-server", "sudo"] });
    await commitSetup(docker, base.id, BASE_SETUP, BASE_DOCKER_IMAGE);
  });
}

/**
 * Builds {@link CLOUD_INIT_DOCKER_IMAGE} once per machine, on {@link ensureBaseImage}'s image: apt-get installs cloud-init from
 * Debian's mirror (about 12 s with the base image there). Emulators call it the first time an instance of the cloud-init AMI boots;
 * call it beforehand (a test's `beforeAll`) to keep that boot quick.
 */
export function ensureCloudInitImage(docker: Docker): Promise<string> {
  return ensureImage(docker, CLOUD_INIT_DOCKER_IMAGE, async () => {
    await commitSetup(docker, await ensureBaseImage(docker), CLOUD_INIT_SETUP, CLOUD_INIT_DOCKER_IMAGE);
  });
}

/** Runs a setup script in a container of `from` and commits the result as `reference`; the container goes either way. */
async function commitSetup(docker: Docker, from: string, setup: string, reference: string): Promise<void> {
  const runId = `ec2-emulator-image-${randomBytes(4).toString("hex")}`;
  const container = await docker.createContainer({ Image: from, Cmd: ["/bin/sh", "-c", setup], Labels: { [LABEL_BUILD]: runId } });
  try {
    await container.start();
    const { StatusCode } = (await container.wait()) as { StatusCode: number };
    if (StatusCode !== 0)
      throw new Error(
        `ec2-emulator: building ${reference} failed with ${StatusCode}: ${(await container.logs({ stdout: true, stderr: true })).toString()}`,
      );
    const [repo, tag] = reference.split(":") as [string, string];
    const config = (await docker.getImage(from).inspect()).Config;
    // Commit merges the setup container's labels in; blank the run id so this shared, cached image is not taken for a leak.
    await container.commit({
      _query: { container: container.id, repo, tag },
      _body: { Cmd: ["/bin/sh"], Env: config?.Env ?? [], Labels: { ...config?.Labels, [LABEL_BUILD]: "" } },
    });
  } finally {
    await container.remove({ force: true });
  }
}

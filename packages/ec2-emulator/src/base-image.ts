import { randomBytes } from "node:crypto";
import { debootstrapImage } from "@kiln/driver-docker/testing";
import type Docker from "dockerode";
import { LABEL_BUILD } from "./container.js";

/** The Docker image behind the seeded base AMI: Debian bookworm minbase with python3, openssh-server, sudo and an `admin` user. */
export const BASE_DOCKER_IMAGE = "kiln-ec2-emulator/debian12:bookworm";

/** Same packages as communicator-ssh's sshd fixture, so both share one cached debootstrap tree. */
const SETUP = [
  "set -e",
  "id admin >/dev/null 2>&1 || useradd -m -s /bin/bash admin",
  "echo 'admin ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/admin",
  "chmod 0440 /etc/sudoers.d/admin",
  // Every instance generates its own host keys at boot, as cloud-init does, so two instances never share one.
  "rm -f /etc/ssh/ssh_host_*",
].join("\n");

const building = new Map<string, Promise<string>>();

/** Builds {@link BASE_DOCKER_IMAGE} once per machine (about a minute the first time; the debootstrap tree is cached). */
export function ensureBaseImage(docker: Docker): Promise<string> {
  let pending = building.get(BASE_DOCKER_IMAGE);
  if (!pending) {
    pending = buildBaseImage(docker);
    building.set(BASE_DOCKER_IMAGE, pending);
    pending.catch(() => building.delete(BASE_DOCKER_IMAGE));
  }
  return pending;
}

async function buildBaseImage(docker: Docker): Promise<string> {
  const exists = await docker.getImage(BASE_DOCKER_IMAGE).inspect().then(() => true, () => false);
  if (exists) return BASE_DOCKER_IMAGE;
  const base = await debootstrapImage(docker, { suite: "bookworm", variant: "minbase", include: ["python3", "openssh-server", "sudo"] });
  const runId = `ec2-emulator-base-${randomBytes(4).toString("hex")}`;
  const container = await docker.createContainer({ Image: base.id, Cmd: ["/bin/sh", "-c", SETUP], Labels: { [LABEL_BUILD]: runId } });
  try {
    await container.start();
    const { StatusCode } = (await container.wait()) as { StatusCode: number };
    if (StatusCode !== 0) throw new Error(`ec2-emulator base image setup failed with ${StatusCode}: ${(await container.logs({ stdout: true, stderr: true })).toString()}`);
    const [repo, tag] = BASE_DOCKER_IMAGE.split(":") as [string, string];
    const config = (await docker.getImage(base.id).inspect()).Config;
    // Commit merges the setup container's labels in; blank the run id so this shared, cached image is not taken for a leak.
    await container.commit({ _query: { container: container.id, repo, tag }, _body: { Cmd: ["/bin/sh"], Env: config?.Env ?? [], Labels: { ...config?.Labels, [LABEL_BUILD]: "" } } });
  } finally {
    await container.remove({ force: true });
  }
  return BASE_DOCKER_IMAGE;
}

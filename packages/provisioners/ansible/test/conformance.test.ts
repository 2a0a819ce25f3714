import { sshDocker, sshDockerOptions } from "@kiln/communicator-ssh/testing";
import chroot from "@kiln/driver-chroot";
import docker from "@kiln/driver-docker";
import { fixtureOptions } from "@kiln/driver-docker/testing";
import { execOk, testProvisioner } from "@kiln/test-suite";
import ansible from "../src/index.js";
import { failingPlaybook, motdPlaybook } from "./fixtures.js";

// ansible-playbook runs on this host and reaches each machine over its driver's own channel: `docker exec`, SSH with the
// pinned host key as a non-root login that becomes root with sudo, and `chroot`.
testProvisioner("ansible", {
  factory: ansible,
  machines: {
    "a Docker container": { factory: docker, options: fixtureOptions },
    "SSH as a non-root login with sudo": { factory: sshDocker, options: () => sshDockerOptions("kiln") },
    "a chroot": { factory: chroot, options: { source: { debootstrap: { suite: "bookworm", variant: "minbase", include: ["python3"] } } } },
  },
  cases: [
    {
      name: "a playbook with a role: template, handler, become, extra vars",
      files: motdPlaybook,
      options: { playbook_file: "ansible/site.yml", extra_vars: { greeting: "baked" }, host_alias: "web" },
      check: async (machine) => {
        // Tasks ran as root, whatever the login user; the handler ran because the template changed.
        const motd = await execOk(machine, "cat /etc/motd-kiln");
        if (motd !== "baked from web as root\n") throw new Error(`unexpected /etc/motd-kiln: ${JSON.stringify(motd)}`);
        await execOk(machine, "test -f /etc/motd-handler-ran");
      },
    },
  ],
  failing: {
    files: failingPlaybook,
    options: { playbook_file: "failing/site.yml" },
    message: /task "check the disk" failed on default: the disk is full/,
  },
  invalid: [
    {},
    { playbook_file: 1 },
    { playbook_file: "a.yml", mode: "ssh" },
    { playbook_file: "a.yml", extra_vars: { "not-a-name": 1 } },
    { playbook_file: "a.yml", ansible_env_vars: ["NO_EQUALS"] },
    { playbook_file: "a.yml", groups: ["bad group"] },
    { playbook_file: "a.yml", unknown: true },
  ],
  fingerprintFile: "ansible/roles/motd/templates/motd.j2",
  timeout: 180_000,
});

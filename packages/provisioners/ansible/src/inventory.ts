import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type Connection, KilnError } from "@kiln/core";
import { knownHostsName } from "@kiln/core/kit";

/** What the inventory needs besides the connection: names, groups and how tasks become root. */
export interface InventoryInput {
  connection: Connection;
  /** The host's name in the inventory (`inventory_hostname`). */
  alias: string;
  groups: readonly string[];
  /** Variables set on the host's groups (on `all` when there are none). */
  groupVars: Readonly<Record<string, unknown>>;
  /** A private directory (0700) for the files the connection needs: the SSH key and known_hosts. */
  workDir: string;
  /** Whether the machine has sudo: a root login without it becomes other users with `su`. */
  hasSudo: boolean;
}

/** The default lxcpath: Ansible's lxc connection cannot name another one. */
const DEFAULT_LXCPATH = "/var/lib/lxc";

/**
 * The inventory (YAML accepts JSON) that reaches the machine over the driver's own channel, exactly as the connection
 * descriptor says: `docker exec` on the descriptor's engine, SSH with the pinned host key, `lxc-attach`, `chroot`.
 * Returns the inventory and the environment `ansible-playbook` needs for it (the Docker engine's address).
 */
export async function writeInventory(input: InventoryInput): Promise<{ path: string; env: Record<string, string> }> {
  const { vars, env } = await connectionVars(input);
  const path = join(input.workDir, "inventory.json");
  await writeFile(path, `${JSON.stringify(inventoryDocument(input.alias, vars, input.groups, input.groupVars), null, 2)}\n`, {
    mode: 0o600,
  });
  return { path, env };
}

/** One host with its connection variables, in `groups` (which carry `groupVars`), or in `all` when there are none. */
export function inventoryDocument(
  alias: string,
  hostVars: Record<string, unknown>,
  groups: readonly string[],
  groupVars: Readonly<Record<string, unknown>>,
) {
  const host = { [alias]: hostVars };
  return groups.length === 0
    ? { all: { hosts: host, vars: groupVars } }
    : { all: { children: Object.fromEntries(groups.map((group) => [group, { hosts: host, vars: groupVars }])) } };
}

async function connectionVars(input: InventoryInput): Promise<{ vars: Record<string, unknown>; env: Record<string, string> }> {
  const { connection } = input;
  // Root reached directly (containers, chroots, a root login) still needs a way to honour a play's `become: true`: sudo
  // when the image has it, else su, which root may use without a password (the fixture and LXC images have no sudo).
  const rootBecome = input.hasSudo ? {} : { ansible_become_method: "su" };
  switch (connection.kind) {
    case "docker":
      return {
        vars: { ansible_connection: "community.docker.docker", ansible_host: connection.container, ansible_user: "root", ...rootBecome },
        env: {
          DOCKER_HOST: connection.host,
          ...(connection.tls ? { DOCKER_CERT_PATH: connection.tls.certPath, DOCKER_TLS_VERIFY: connection.tls.verify ? "1" : "" } : {}),
        },
      };
    case "ssh": {
      const key = join(input.workDir, "id_kiln");
      const knownHosts = join(input.workDir, "known_hosts");
      await writeFile(key, connection.privateKey.endsWith("\n") ? connection.privateKey : `${connection.privateKey}\n`, { mode: 0o600 });
      await writeFile(knownHosts, `${knownHostsName(connection.host, connection.port)} ${connection.hostKey}\n`, { mode: 0o600 });
      const become = connection.become ? { ansible_become_method: connection.become.method } : rootBecome;
      return {
        vars: {
          ansible_connection: "ssh",
          ansible_host: connection.host,
          ansible_port: connection.port,
          ansible_user: connection.user,
          ansible_ssh_private_key_file: key,
          // The pinned key, checked strictly: never StrictHostKeyChecking=no.
          ansible_ssh_common_args: `-o UserKnownHostsFile=${knownHosts} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes`,
          ...become,
        },
        env: {},
      };
    }
    case "lxc":
      if (connection.lxcpath !== DEFAULT_LXCPATH)
        throw new KilnError("E_PROVISION", `ansible: the container's lxcpath is ${connection.lxcpath}`, {
          hint: `Ansible's community.general.lxc connection reaches containers in ${DEFAULT_LXCPATH} only; use mode: local`,
        });
      // Pipelining through this plugin corrupted large module payloads now and then (a SyntaxError in the module): files it is.
      return {
        vars: { ansible_connection: "community.general.lxc", ansible_host: connection.name, ansible_pipelining: false, ...rootBecome },
        env: {},
      };
    case "chroot":
      return { vars: { ansible_connection: "community.general.chroot", ansible_host: connection.path, ...rootBecome }, env: {} };
  }
}

import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { writeInventory } from "./inventory.js";

let workDir: string;
beforeEach(async () => {
  workDir = await mkdtemp(join(tmpdir(), "kiln-inventory-test-"));
});
afterEach(() => rm(workDir, { recursive: true, force: true }));

const base = { alias: "web", groups: [], groupVars: {}, hasSudo: true };

async function inventoryOf(input: Parameters<typeof writeInventory>[0]) {
  const { path, env } = await writeInventory(input);
  return { inventory: JSON.parse(await readFile(path, "utf8")), env, mode: (await stat(path)).mode & 0o777 };
}

describe("writeInventory", () => {
  it("reaches a container with docker exec as root, on the descriptor's engine", async () => {
    const connection = {
      kind: "docker" as const,
      container: "abc",
      host: "tcp://127.0.0.1:2376",
      user: "app",
      tls: { certPath: "/certs", verify: true },
    };
    const { inventory, env, mode } = await inventoryOf({ ...base, connection, workDir, hasSudo: false });
    expect(inventory.all.hosts.web).toEqual({
      ansible_connection: "community.docker.docker",
      ansible_host: "abc",
      ansible_user: "root",
      ansible_become_method: "su",
    });
    expect(env).toEqual({ DOCKER_HOST: "tcp://127.0.0.1:2376", DOCKER_CERT_PATH: "/certs", DOCKER_TLS_VERIFY: "1" });
    expect(mode).toBe(0o600);
  });

  it("logs in over SSH with the key and the pinned host key, strictly, and becomes root the descriptor's way", async () => {
    const connection = {
      kind: "ssh" as const,
      host: "127.0.0.1",
      port: 2222,
      user: "admin",
      privateKey: "KEY",
      hostKey: "ssh-ed25519 AAAAC3",
      become: { method: "sudo" as const, user: "root" },
    };
    const { inventory } = await inventoryOf({ ...base, connection, workDir, groups: ["webservers"], groupVars: { tier: "front" } });
    const host = inventory.all.children.webservers.hosts.web;
    expect(inventory.all.children.webservers.vars).toEqual({ tier: "front" });
    expect(host).toMatchObject({ ansible_host: "127.0.0.1", ansible_port: 2222, ansible_user: "admin", ansible_become_method: "sudo" });
    expect(host.ansible_ssh_common_args).toContain("StrictHostKeyChecking=yes");
    expect(host.ansible_ssh_common_args).not.toMatch(/StrictHostKeyChecking=no/);
    expect(await readFile(join(workDir, "known_hosts"), "utf8")).toBe("[127.0.0.1]:2222 ssh-ed25519 AAAAC3\n");
    expect((await stat(host.ansible_ssh_private_key_file)).mode & 0o777).toBe(0o600);
  });

  it("enters LXC containers and chroots with their own connections, and refuses an lxcpath Ansible cannot reach", async () => {
    const lxc = await inventoryOf({ ...base, connection: { kind: "lxc", name: "kiln-1", lxcpath: "/var/lib/lxc" }, workDir });
    expect(lxc.inventory.all.hosts.web).toEqual({
      ansible_connection: "community.general.lxc",
      ansible_host: "kiln-1",
      ansible_pipelining: false,
    });
    const chroot = await inventoryOf({ ...base, connection: { kind: "chroot", path: "/srv/tree" }, workDir });
    expect(chroot.inventory.all.hosts.web).toEqual({ ansible_connection: "community.general.chroot", ansible_host: "/srv/tree" });
    await expect(writeInventory({ ...base, connection: { kind: "lxc", name: "x", lxcpath: "/tmp/lxc" }, workDir })).rejects.toThrow(
      /lxcpath/,
    );
  });
});

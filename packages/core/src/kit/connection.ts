import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Connection } from "../types.js";
import { shellJoin } from "./shell.js";

export interface OutsideCommandOptions {
  /** Run as root (through the connection's own way: `-u root`, `become`). Default true. */
  root?: boolean;
  /** A private directory (0700) where files the CLI needs are written: the SSH key (0600) and a known_hosts file. */
  workDir: string;
}

/**
 * The argv that runs `command` on the machine through the platform's own CLI, exactly as the connection describes it:
 * `docker -H … exec`, `ssh` with the key and the pinned host key (strict checking, never `StrictHostKeyChecking=no`),
 * `lxc-attach -P … -n …`, `chroot`. The conformance suite proves every driver's connection with it; a person or another
 * tool can use it to reach a machine as Kiln does.
 */
export async function outsideCommand(
  connection: Connection,
  command: readonly string[],
  options: OutsideCommandOptions,
): Promise<string[]> {
  const root = options.root ?? true;
  switch (connection.kind) {
    case "docker": {
      const tls = connection.tls;
      const tlsFlags = tls
        ? [
            tls.verify ? "--tlsverify" : "--tls",
            ...["ca", "cert", "key"].flatMap((name) => [`--tls${name === "ca" ? "cacert" : name}`, join(tls.certPath, `${name}.pem`)]),
          ]
        : [];
      return [
        "docker",
        "-H",
        connection.host,
        ...tlsFlags,
        "exec",
        "-u",
        root ? "root" : connection.user,
        connection.container,
        ...command,
      ];
    }
    case "ssh": {
      const key = join(options.workDir, "id_kiln");
      const knownHosts = join(options.workDir, "known_hosts");
      await writeFile(key, connection.privateKey.endsWith("\n") ? connection.privateKey : `${connection.privateKey}\n`, { mode: 0o600 });
      await writeFile(knownHosts, `${knownHostsName(connection.host, connection.port)} ${connection.hostKey}\n`, { mode: 0o600 });
      const become = root && connection.become ? ["sudo", "-n", "-u", connection.become.user, "--"] : [];
      return [
        "ssh",
        ...["-i", key, "-p", String(connection.port)],
        // Quoted: ssh splits this option's value at spaces.
        ...[
          "-o",
          "IdentitiesOnly=yes",
          "-o",
          "BatchMode=yes",
          "-o",
          "StrictHostKeyChecking=yes",
          "-o",
          `UserKnownHostsFile="${knownHosts}"`,
        ],
        `${connection.user}@${connection.host}`,
        shellJoin([...become, ...command]),
      ];
    }
    case "lxc":
      return ["lxc-attach", "-P", connection.lxcpath, "-n", connection.name, "--clear-env", "--", ...command];
    case "chroot":
      return ["chroot", connection.path, ...command];
  }
}

/** known_hosts names a host on a port other than 22 as `[host]:port`. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

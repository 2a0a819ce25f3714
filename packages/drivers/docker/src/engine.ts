import { homedir } from "node:os";
import { join } from "node:path";
import type Docker from "dockerode";
import { type DockerConnection, KilnError } from "@kiln/core";

/** Connects to the engine named by DOCKER_HOST (default: the local socket). dockerode loads only now, not when the bake file is validated. */
export async function connect(): Promise<Docker> {
  const { default: DockerClient } = await import("dockerode");
  return new DockerClient();
}

/** Fails with install/start instructions when no engine answers. */
export async function ensureEngine(docker: Docker): Promise<void> {
  await docker.ping().catch((error: unknown) => Promise.reject(engineUnreachable(error) ?? error));
}

/**
 * The KilnError for "no engine answers" when `error` is a connection failure, else undefined. Checking the first real call
 * instead of pinging first saves a round trip on every bake.
 */
export function engineUnreachable(error: unknown): KilnError | undefined {
  const code = (error as NodeJS.ErrnoException).code;
  if (!code || !["ENOENT", "ECONNREFUSED", "EACCES", "ECONNRESET", "ENOTFOUND", "EHOSTUNREACH"].includes(code)) return undefined;
  const where = process.env.DOCKER_HOST ?? "/var/run/docker.sock";
  return new KilnError("E_MISSING_TOOL", `driver "docker": no Docker engine answers at ${where} (${(error as Error).message})`, {
    hint: "install and start it: apt-get install -y docker.io && dockerd &  (or set DOCKER_HOST)",
    cause: error,
  });
}

export function isNotFound(error: unknown): boolean {
  return (error as { statusCode?: number }).statusCode === 404;
}

/** `acme/web:1.2` → { repo: "acme/web", tag: "1.2" }; the tag defaults to `latest`. A registry port is not a tag. */
export function splitTag(reference: string): { repo: string; tag: string } {
  const at = reference.lastIndexOf(":");
  if (at > reference.lastIndexOf("/")) return { repo: reference.slice(0, at), tag: reference.slice(at + 1) };
  return { repo: reference, tag: "latest" };
}

/**
 * The engine a client talks to, as the docker CLI would be pointed at it (`-H`, TLS material): what a machine's connection
 * descriptor carries, so a tool outside Kiln reaches the same engine — a remote `DOCKER_HOST` included.
 */
export async function engineEndpoint(api: Docker): Promise<Pick<DockerConnection, "host" | "tls">> {
  const modem = api.modem as { socketPath?: string | (() => Promise<string>); host?: string; port?: string; protocol?: string };
  // Without DOCKER_HOST, docker-modem looks for the socket (~/.docker/run/docker.sock, else /var/run/docker.sock) on first use.
  const socketPath = typeof modem.socketPath === "function" ? await modem.socketPath() : modem.socketPath;
  if (socketPath) return { host: `unix://${socketPath}` };
  if (modem.protocol === "ssh") return { host: process.env.DOCKER_HOST ?? `ssh://${modem.host}` };
  const host = `tcp://${modem.host}:${modem.port}`;
  if (modem.protocol !== "https") return { host };
  return {
    host,
    tls: { certPath: process.env.DOCKER_CERT_PATH ?? join(homedir(), ".docker"), verify: process.env.DOCKER_TLS_VERIFY === "1" },
  };
}

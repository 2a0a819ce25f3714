import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import type { Agent } from "node:https";
import { homedir } from "node:os";
import { join } from "node:path";
import type Docker from "dockerode";
import { type DockerConnection, KilnError } from "@kiln/core";

/** An engine as the docker CLI names it: what `docker -H` and its TLS flags (or a docker context) would point at. */
export interface EngineTarget {
  /** As DOCKER_HOST spells it: `unix:///run/docker.sock`, `tcp://10.0.0.5:2376`, `ssh://user@host`. */
  host: string;
  /** TLS material (a directory with ca.pem, cert.pem, key.pem) and whether the engine's certificate is verified. */
  tls?: { certPath: string; verify: boolean };
  /** The docker context that named the engine, when one did. */
  context?: string;
}

/** The engine each client was made for: `engineEndpoint` describes it as the user named it, not as dockerode parsed it. */
const targets = new WeakMap<Docker, EngineTarget>();

/**
 * Connects to the engine the docker CLI would use: DOCKER_HOST (with DOCKER_TLS_VERIFY, DOCKER_TLS, DOCKER_CERT_PATH), else the
 * docker context named by DOCKER_CONTEXT or config.json's `currentContext`, else the local socket. dockerode loads only now, not
 * when the bake file is validated.
 */
export async function connect(target: EngineTarget | null | undefined = resolveEngine()): Promise<Docker> {
  const { default: DockerClient } = await import("dockerode");
  // The local socket: docker-modem finds it (~/.docker/run/docker.sock, else /var/run/docker.sock) on first use. `null` asks for
  // it whatever DOCKER_HOST says (an `engines:` entry naming the default context).
  if (target === undefined) return new DockerClient();
  if (target === null) return withoutEngineVariables(() => new DockerClient());
  const options = await clientOptions(target);
  const api = withoutEngineVariables(() => new DockerClient(options));
  targets.set(api, target);
  return api;
}

/**
 * Runs `make` with DOCKER_HOST, DOCKER_CERT_PATH and DOCKER_TLS_VERIFY hidden. docker-modem's constructor reads them itself, on
 * top of the options it is given, and throws when DOCKER_CERT_PATH has no cert.pem (an engine that verifies no client needs
 * none); every setting is already in the options. Synchronous, so nothing else runs while they are hidden.
 */
function withoutEngineVariables<T>(make: () => T): T {
  const names = ["DOCKER_HOST", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY"] as const;
  const saved = names.map((name) => [name, process.env[name]] as const);
  for (const name of names) delete process.env[name];
  try {
    return make();
  } finally {
    for (const [name, value] of saved) if (value !== undefined) process.env[name] = value;
  }
}

/**
 * The engine named by the environment and the docker CLI's configuration, resolved in the CLI's order (DOCKER_HOST, then
 * DOCKER_CONTEXT, then `currentContext` in $DOCKER_CONFIG/config.json or ~/.docker/config.json); undefined for the local socket.
 */
export function resolveEngine(env: NodeJS.ProcessEnv = process.env): EngineTarget | undefined {
  const configDir = env.DOCKER_CONFIG || join(homedir(), ".docker");
  if (env.DOCKER_HOST) return fromEnvironment(env.DOCKER_HOST, env, configDir);
  const name = env.DOCKER_CONTEXT || currentContext(configDir);
  return !name || name === "default" ? undefined : fromContext(name, configDir);
}

function fromEnvironment(host: string, env: NodeJS.ProcessEnv, configDir: string): EngineTarget {
  const url = host.includes("://") ? host : `tcp://${host}`;
  if (!isTcp(url)) return { host: url };
  // As the docker CLI reads them: any non-empty DOCKER_TLS_VERIFY verifies, DOCKER_TLS alone encrypts without verifying.
  // Port 2376 (Docker's TLS port) implies TLS, as docker-modem always assumed; it verifies unless DOCKER_TLS asks otherwise.
  const verify = Boolean(env.DOCKER_TLS_VERIFY) || (!env.DOCKER_TLS && portOf(url) === "2376");
  if (!verify && !env.DOCKER_TLS) return { host: url };
  return { host: url, tls: { certPath: env.DOCKER_CERT_PATH || configDir, verify } };
}

function currentContext(configDir: string): string | undefined {
  const file = join(configDir, "config.json");
  const text = readIfExists(file);
  if (text === undefined) return undefined;
  try {
    return (JSON.parse(text) as { currentContext?: string }).currentContext;
  } catch (error) {
    throw new KilnError("E_CONFIG", `driver "docker": ${file} is not valid JSON (${(error as Error).message})`, { cause: error });
  }
}

/** A context as the docker CLI stores it: contexts/meta/<sha256(name)>/meta.json, TLS files in contexts/tls/<sha256(name)>/docker. */
function fromContext(name: string, configDir: string): EngineTarget {
  const id = createHash("sha256").update(name).digest("hex");
  const metaFile = join(configDir, "contexts", "meta", id, "meta.json");
  const text = readIfExists(metaFile);
  if (text === undefined) {
    throw new KilnError("E_CONFIG", `driver "docker": docker context "${name}" does not exist (no ${metaFile})`, {
      hint: "list contexts with `docker context ls`; unset DOCKER_CONTEXT or run `docker context use default` for the local engine",
    });
  }
  let endpoint: { Host?: string; SkipTLSVerify?: boolean } | undefined;
  try {
    endpoint = (JSON.parse(text) as { Endpoints?: { docker?: typeof endpoint } }).Endpoints?.docker;
  } catch (error) {
    throw new KilnError("E_CONFIG", `driver "docker": ${metaFile} is not valid JSON (${(error as Error).message})`, { cause: error });
  }
  if (!endpoint?.Host) {
    throw new KilnError("E_CONFIG", `driver "docker": docker context "${name}" has no Docker endpoint (${metaFile})`, {
      hint: `docker context update ${name} --docker host=…`,
    });
  }
  if (!isTcp(endpoint.Host)) return { host: endpoint.Host, context: name };
  const certPath = join(configDir, "contexts", "tls", id, "docker");
  // The CLI uses TLS when the context stores TLS material or skips verification; otherwise plain HTTP.
  const hasMaterial = ["ca.pem", "cert.pem", "key.pem"].some((file) => existsSync(join(certPath, file)));
  if (!hasMaterial && !endpoint.SkipTLSVerify) return { host: endpoint.Host, context: name };
  return { host: endpoint.Host, tls: { certPath, verify: !endpoint.SkipTLSVerify }, context: name };
}

/** dockerode's options for a target: a socket, SSH (docker-modem's transport), or HTTP(S) with the target's TLS material. */
async function clientOptions(target: EngineTarget): Promise<Docker.DockerOptions & { agent?: Agent; pathPrefix?: string }> {
  const scheme = target.host.slice(0, target.host.indexOf("://"));
  if (scheme === "unix" || scheme === "npipe") return { socketPath: target.host.slice(scheme.length + 3) };
  const url = new URL(target.host);
  if (scheme === "ssh") {
    return {
      protocol: "ssh",
      host: url.hostname,
      port: url.port || undefined,
      username: decodeURIComponent(url.username) || undefined,
      ...(process.env.SSH_AUTH_SOCK ? { sshOptions: { agent: process.env.SSH_AUTH_SOCK } } : {}),
    };
  }
  const tls = target.tls;
  const timeout = Number(process.env.DOCKER_CLIENT_TIMEOUT) || undefined;
  const tcp = {
    host: url.hostname,
    port: portOf(target.host),
    pathPrefix: process.env.DOCKER_PATH_PREFIX || "/",
    ...(timeout ? { timeout } : {}),
  };
  if (!tls) return { ...tcp, protocol: "http" };
  const [ca, cert, key] = await Promise.all(["ca.pem", "cert.pem", "key.pem"].map((file) => readMaterial(tls.certPath, file)));
  if (tls.verify && !ca) {
    throw new KilnError("E_CONFIG", `driver "docker": no ca.pem in ${tls.certPath} to verify ${target.host} with`, {
      hint: "put the engine's CA certificate there, or set DOCKER_TLS (encrypts, does not verify) instead of DOCKER_TLS_VERIFY",
    });
  }
  // Skipping verification is the agent's setting: docker-modem passes only key, cert and ca to each request.
  const agent = tls.verify ? undefined : new (await import("node:https")).Agent({ rejectUnauthorized: false });
  return { ...tcp, protocol: "https", ca, cert, key, ...(agent ? { agent } : {}) };
}

function isTcp(host: string): boolean {
  return host.startsWith("tcp://");
}

/** The port of a tcp:// host; 2375 when none is written, as the docker CLI assumes. */
function portOf(host: string): string {
  return new URL(host).port || "2375";
}

function readIfExists(file: string): string | undefined {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

async function readMaterial(dir: string, file: string): Promise<Buffer | undefined> {
  return readFile(join(dir, file)).catch((error: NodeJS.ErrnoException) => (error.code === "ENOENT" ? undefined : Promise.reject(error)));
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
  const target = resolveEngineQuietly();
  const where = target ? `${target.host}${target.context ? ` (docker context "${target.context}")` : ""}` : "/var/run/docker.sock";
  return new KilnError("E_MISSING_TOOL", `driver "docker": no Docker engine answers at ${where} (${(error as Error).message})`, {
    // A socket is an engine on this machine, perhaps never installed; anything else is another machine's engine to start.
    hint:
      !target || /^(unix|npipe):/.test(target.host)
        ? "install and start it: apt-get install -y docker.io && dockerd &  (or set DOCKER_HOST, or `docker context use` a remote one)"
        : "start that engine, or point DOCKER_HOST (or `docker context use`) at one that answers",
    cause: error,
  });
}

/** The engine for an error message: a broken context is not the error being explained. */
function resolveEngineQuietly(): EngineTarget | undefined {
  try {
    return resolveEngine();
  } catch {
    return undefined;
  }
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
  const target = targets.get(api);
  // A context's TLS files are a DOCKER_CERT_PATH-style directory: `docker -H … --tlscacert <dir>/ca.pem …` reaches it too.
  if (target) return target.tls ? { host: target.host, tls: target.tls } : { host: target.host };
  // A client made elsewhere (tests, other packages): read what docker-modem parsed.
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

import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, openSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { request as httpsRequest } from "node:https";
import { request as httpRequest } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type Docker from "dockerode";
import { KilnError, LABELS, pluginInit, type BakeContext, type Machine } from "@kiln/core";
import { docker } from "./docker.js";
import { debootstrapImage } from "./debootstrap.js";
import { followProgress, type ProgressEvent } from "./registry-store.js";

/** Builds (or reuses) a debootstrap base image: fixtures of other packages (an sshd image, say) start from it. */
export { debootstrapImage, type DebootstrapSource } from "./debootstrap.js";
import { connect, ensureEngine } from "./engine.js";

/** Debian bookworm minbase + python3, built with debootstrap from the host's mirror: the base every test starts from. */
export const FIXTURE_IMAGE = "kiln-fixture/debian:bookworm";

/**
 * Makes sure {@link FIXTURE_IMAGE} exists, building it once (about a minute) if needed. Fails with install instructions
 * when the engine or debootstrap is missing — tests that need it must not silently skip.
 */
export async function ensureFixtureImage(): Promise<string> {
  const docker = await connect();
  await ensureEngine(docker);
  const exists = await docker
    .getImage(FIXTURE_IMAGE)
    .inspect()
    .then(
      () => true,
      () => false,
    );
  if (exists) return FIXTURE_IMAGE;
  try {
    const built = await debootstrapImage(docker, { suite: "bookworm", variant: "minbase", include: ["python3"] });
    const [repo, tag] = FIXTURE_IMAGE.split(":") as [string, string];
    await docker.getImage(built.id).tag({ repo, tag });
  } catch (error) {
    if (error instanceof KilnError && error.code === "E_MISSING_TOOL") {
      throw new KilnError("E_MISSING_TOOL", `cannot build the test fixture image ${FIXTURE_IMAGE}: ${error.message}`, {
        hint: error.hint ?? "apt-get install -y debootstrap",
      });
    }
    throw error;
  }
  return FIXTURE_IMAGE;
}

/** Containers and images labelled with this run id: what a bake left behind. */
export async function listDockerResources(runId: string): Promise<string[]> {
  const docker = await connect();
  const filter = { label: [`${LABELS.build}=${runId}`] };
  const containers = await docker.listContainers({ all: true, filters: filter });
  const images = await docker.listImages({ all: true, filters: filter });
  return [...containers.map((c) => `container ${c.Names[0] ?? c.Id}`), ...images.map((i) => `image ${i.Id}`)];
}

/** Removes every container and image labelled with this run id (for tests that keep artefacts to inspect them). */
export async function removeDockerResources(runId: string): Promise<void> {
  const docker = await connect();
  const filter = { label: [`${LABELS.build}=${runId}`] };
  for (const container of await docker.listContainers({ all: true, filters: filter })) {
    await docker
      .getContainer(container.Id)
      .remove({ force: true, v: true })
      .catch(() => {});
  }
  // A parent image cannot go while a child built on it exists: remove in passes until nothing is left or nothing moves.
  for (let pass = 0; pass < 5; pass++) {
    const images = await docker.listImages({ all: true, filters: filter });
    if (images.length === 0) break;
    for (const image of images)
      await docker
        .getImage(image.Id)
        .remove({ force: true })
        .catch(() => {});
  }
}

/** Driver options that start the fixture image. */
export async function fixtureOptions(): Promise<{ source: string }> {
  return { source: await ensureFixtureImage() };
}

/**
 * A fresh build container from the fixture image, labelled with the context's run id and removed by its cleanups (or by
 * disposing it with `await using`).
 */
export async function launchFixture(ctx: BakeContext): Promise<Machine> {
  const driver = docker(pluginInit("driver", "docker", process.cwd(), ctx.log));
  const options = await fixtureOptions();
  return driver.launch(ctx, await driver.resolveSource(ctx, options), options);
}

const execFileAsync = promisify(execFile);

/** Runs a host tool with a bounded time (a hang fails the test), saying which package to install when it is missing. */
async function runTool(command: string, args: string[], install: string): Promise<string> {
  try {
    return (await execFileAsync(command, args, { timeout: 60_000 })).stdout;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      throw new KilnError("E_MISSING_TOOL", `${command} not found`, { hint: `apt-get install -y ${install}`, cause: error });
    }
    throw error;
  }
}

/** A port nothing listens on (yet) at `address`: another process is about to take it. */
async function freePortOn(address: string): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(0, address, resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Files {@link issueCertificates} wrote. */
export interface TestCertificates {
  /** The CA that signed both certificates: what a client trusts. */
  caPath: string;
  serverCert: string;
  serverKey: string;
  /** ca.pem, cert.pem and key.pem of a client the CA signed: a DOCKER_CERT_PATH (or a docker context's TLS files). */
  clientDir: string;
}

/**
 * A throwaway CA (valid two days) with a server certificate for `ips` and a client certificate, made with openssl in `dir`.
 * EC keys: generating them takes milliseconds where RSA takes seconds.
 */
export async function issueCertificates(dir: string, ips: string[]): Promise<TestCertificates> {
  const at = (name: string) => join(dir, name);
  const clientDir = at("client");
  await mkdir(clientDir, { recursive: true });
  const newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const openssl = (args: string[]) => runTool("openssl", args, "openssl");
  await openssl(["req", "-x509", ...newKey, "-keyout", at("ca-key.pem"), "-out", at("ca.pem"), "-days", "2", "-subj", "/CN=kiln-test-ca"]);
  const sign = async (name: string, subject: string, extensions: string, key: string, cert: string) => {
    await writeFile(at(`${name}.ext`), extensions);
    await openssl(["req", ...newKey, "-keyout", key, "-out", at(`${name}.csr`), "-subj", subject]);
    // A random serial per certificate: no serial file shared between the two signings running at once.
    const serial = ["-set_serial", `0x${randomBytes(8).toString("hex")}`];
    const signing = ["-CA", at("ca.pem"), "-CAkey", at("ca-key.pem"), ...serial, "-days", "2", "-extfile", at(`${name}.ext`)];
    await openssl(["x509", "-req", "-in", at(`${name}.csr`), ...signing, "-out", cert]);
  };
  const serverExtensions = `subjectAltName=${ips.map((ip) => `IP:${ip}`).join(",")}\nextendedKeyUsage=serverAuth\n`;
  await Promise.all([
    sign("server", `/CN=${ips[0] ?? "localhost"}`, serverExtensions, at("server-key.pem"), at("server-cert.pem")),
    sign("client", "/CN=kiln-test-client", "extendedKeyUsage=clientAuth\n", join(clientDir, "key.pem"), join(clientDir, "cert.pem")),
  ]);
  await writeFile(join(clientDir, "ca.pem"), await readFile(at("ca.pem")));
  return { caPath: at("ca.pem"), serverCert: at("server-cert.pem"), serverKey: at("server-key.pem"), clientDir };
}

/** Waits for a long-running child to exit after `signal`, killing it outright if it takes longer than `graceMs`. */
async function stopProcess(child: ChildProcess, graceMs = 30_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Polls `ready` until it holds, failing with the child's log when the child exits or `limitMs` passes. */
async function waitUntil(what: string, child: ChildProcess, log: string, ready: () => Promise<boolean>, limitMs = 60_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await ready())) {
    if (child.exitCode !== null || Date.now() > deadline) {
      const tail = (await readFile(log, "utf8").catch(() => "")).trim().split("\n").slice(-15).join("\n");
      await stopProcess(child);
      throw new Error(`${what} did not start (exit ${child.exitCode}); its log ends:\n${tail}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** A child process writing stdout and stderr to `log`, detached from the test's terminal. Check it is installed first. */
function spawnLogged(command: string, args: string[], log: string): ChildProcess {
  const fd = openSync(log, "a");
  try {
    // A failure to start shows as its exit code (and the log) in waitUntil's error.
    return spawn(command, args, { stdio: ["ignore", fd, fd] }).on("error", () => {});
  } finally {
    closeSync(fd);
  }
}

/** A second Docker engine on this machine, started by {@link startSecondEngine}. */
export interface SecondEngine {
  /** `unix://…/docker.sock`: the DOCKER_HOST that names it. */
  host: string;
  /** `tcp://127.0.0.2:PORT`, served with TLS that also verifies the client (only with `tcp: true`). */
  tcpHost?: string;
  /** The DOCKER_CERT_PATH for `tcpHost`: ca.pem, cert.pem and key.pem of a client the engine trusts. */
  certPath?: string;
  /** A client on its socket. */
  api: Docker;
  /** Stops the engine (its containers with it) and removes its bridge, data and certificates. */
  stop(): Promise<void>;
}

/**
 * A second engine on this machine, with its own socket, data root and bridge: as far as Kiln can tell, a remote one named by
 * DOCKER_HOST — and, as its image store starts empty, "a fresh machine". With `tcp: true` it also listens on
 * tcp://127.0.0.2:<free port> with `--tlsverify` (Linux routes all of 127/8 to lo, so that address needs no setup), its
 * certificates issued by a CA made for it. Its bridge is its own (a /24 of 198.18.0.0/15, the benchmarking range nothing
 * routes, picked at random so two engines at once do not clash), and it writes no iptables rules: started with `--bridge=none`
 * instead, dockerd deletes the first engine's docker0.
 */
export async function startSecondEngine(options: { tcp?: boolean } = {}): Promise<SecondEngine> {
  const { default: DockerClient } = await import("dockerode");
  const dir = await mkdtemp(join(tmpdir(), "kiln-engine-"));
  const socket = join(dir, "docker.sock");
  const bridge = `kilnbr-${randomBytes(3).toString("hex")}`;
  const subnet = await unusedSubnet();
  const ip = (...args: string[]) => runTool("ip", args, "iproute2");
  const removeBridge = () =>
    ip("link", "del", bridge).then(
      () => {},
      () => {},
    );
  await ip("link", "add", bridge, "type", "bridge");
  let daemon: ChildProcess | undefined;
  try {
    await ip("addr", "add", `${subnet}.1/24`, "dev", bridge);
    await ip("link", "set", bridge, "up");
    const args = [
      `--host=unix://${socket}`,
      `--data-root=${join(dir, "data")}`,
      `--exec-root=${join(dir, "exec")}`,
      `--pidfile=${join(dir, "docker.pid")}`,
      `--bridge=${bridge}`,
      "--iptables=false",
      "--ip-masq=false",
    ];
    let tcp: { host: string; certPath: string; api: Docker } | undefined;
    if (options.tcp) {
      const certificates = await issueCertificates(join(dir, "certs"), ["127.0.0.2"]);
      const port = await freePortOn("127.0.0.2");
      args.push(`--host=tcp://127.0.0.2:${port}`, "--tlsverify", `--tlscacert=${certificates.caPath}`);
      args.push(`--tlscert=${certificates.serverCert}`, `--tlskey=${certificates.serverKey}`);
      const material = (name: string) => readFile(join(certificates.clientDir, name));
      const [ca, cert, key] = await Promise.all([material("ca.pem"), material("cert.pem"), material("key.pem")]);
      const api = new DockerClient({ host: "127.0.0.2", port, protocol: "https", ca, cert, key });
      tcp = { host: `tcp://127.0.0.2:${port}`, certPath: certificates.clientDir, api };
    }
    const log = join(dir, "dockerd.log");
    await runTool("dockerd", ["--version"], "docker.io");
    daemon = spawnLogged("dockerd", args, log);
    // `host: undefined`: docker-modem would otherwise take a tcp DOCKER_HOST of the caller's environment over this socket.
    const api = new DockerClient({ socketPath: socket, host: undefined });
    const answers = (client: Docker) =>
      client.ping().then(
        () => true,
        () => false,
      );
    await waitUntil("the second dockerd", daemon, log, async () => (await answers(api)) && (!tcp || (await answers(tcp.api))));
    const running = daemon;
    const stop = async () => {
      await stopProcess(running);
      await removeBridge();
      await rm(dir, { recursive: true, force: true });
    };
    return { host: `unix://${socket}`, api, stop, ...(tcp ? { tcpHost: tcp.host, certPath: tcp.certPath } : {}) };
  } catch (error) {
    if (daemon) await stopProcess(daemon);
    await removeBridge();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

/** `198.18.N` or `198.19.N`: a /24 no interface here has an address in. */
async function unusedSubnet(): Promise<string> {
  const taken = await runTool("ip", ["-4", "-o", "addr"], "iproute2");
  for (;;) {
    const candidate = `198.${18 + ((randomBytes(1)[0] ?? 0) % 2)}.${randomBytes(1)[0]}`;
    if (!taken.includes(` ${candidate}.`)) return candidate;
  }
}

/**
 * Copies an image into another engine as `docker save | docker load` would carry it (from the engine {@link connect} finds
 * unless `from` is given), and waits until the load has finished.
 */
export async function loadImageInto(target: Docker, reference: string, from?: Docker): Promise<void> {
  const source = from ?? (await connect());
  const archive = await source.getImage(reference).get();
  await followStream(target, await target.loadImage(archive, { quiet: true }));
}

/** Reads an engine's progress stream to its end, rejecting on the first error message in it (a failed push says so only there). */
export function followStream(api: Docker, stream: NodeJS.ReadableStream): Promise<ProgressEvent[]> {
  return followProgress(api, stream, "finish the engine's pull, push or load");
}

/** A registry started by {@link startRegistry}. */
export interface TestRegistry {
  /** `127.0.0.1:PORT`: the host part of its image references. */
  address: string;
  /** The CA its certificate chains to (only with `tls: true`). */
  caPath?: string;
  /** Stops it and removes its storage. */
  stop(): Promise<void>;
}

/**
 * An OCI registry (Debian's docker-registry, distribution 2.8) on 127.0.0.1 at a free port, storing in a temp dir, with
 * deletes enabled (`prune` deletes by digest). `tls` serves HTTPS with a certificate from a CA made for it; `htpasswd` asks
 * for that user's password (bcrypt, the only hash it reads). Docker treats registries on 127.0.0.0/8 as insecure: the
 * engine accepts this self-signed certificate without `insecure-registries` or /etc/docker/certs.d.
 */
export async function startRegistry(options: { tls?: boolean; htpasswd?: { user: string; password: string } } = {}): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), "kiln-registry-"));
  let registry: ChildProcess | undefined;
  try {
    const port = await freePortOn("127.0.0.1");
    const address = `127.0.0.1:${port}`;
    const certificates = options.tls ? await issueCertificates(join(dir, "certs"), ["127.0.0.1"]) : undefined;
    const config: Record<string, unknown> = {
      version: 0.1,
      log: { level: "warn", accesslog: { disabled: true } },
      storage: { filesystem: { rootdirectory: join(dir, "storage") }, delete: { enabled: true } },
      http: {
        addr: address,
        ...(certificates ? { tls: { certificate: certificates.serverCert, key: certificates.serverKey } } : {}),
      },
    };
    if (options.htpasswd) {
      const { user, password } = options.htpasswd;
      const line = await runTool("htpasswd", ["-Bbn", user, password], "apache2-utils");
      await writeFile(join(dir, "htpasswd"), `${line.trim()}\n`);
      config.auth = { htpasswd: { realm: "kiln-test", path: join(dir, "htpasswd") } };
    }
    // JSON is YAML: no quoting rules to get wrong for paths.
    await writeFile(join(dir, "config.yml"), JSON.stringify(config, null, 2));
    await runTool("docker-registry", ["--version"], "docker-registry");
    const log = join(dir, "registry.log");
    registry = spawnLogged("docker-registry", ["serve", join(dir, "config.yml")], log);
    const ca = certificates ? await readFile(certificates.caPath) : undefined;
    // 401 is an answer too: with htpasswd on, /v2/ asks for credentials.
    await waitUntil("docker-registry", registry, log, async () => [200, 401].includes(await statusOf(`${address}/v2/`, ca)));
    const running = registry;
    const stop = async () => {
      await stopProcess(running);
      await rm(dir, { recursive: true, force: true });
    };
    return { address, stop, ...(certificates ? { caPath: certificates.caPath } : {}) };
  } catch (error) {
    if (registry) await stopProcess(registry);
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

/** The HTTP status of GET https://`where` when a CA is given (else http://), or 0 when nothing answers. */
function statusOf(where: string, ca: Buffer | undefined): Promise<number> {
  return new Promise((resolve) => {
    const options = { timeout: 5_000, ...(ca ? { ca } : {}) };
    const request = (ca ? httpsRequest : httpRequest)(`${ca ? "https" : "http"}://${where}`, options, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    request.on("timeout", () => request.destroy());
    request.on("error", () => resolve(0));
    request.end();
  });
}

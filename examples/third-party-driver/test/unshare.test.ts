import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect, createServer } from "node:net";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Driver, type KilnEvent, KilnError, pluginInit } from "@kiln/core";
import { BuildRun, loadProject } from "@kiln/core/engine";
import shell from "@kiln/provisioner-shell";
import { createTestContext, execOk } from "@kiln/test-suite";
import unshare, { type UnshareOptions } from "../src/index.js";
import { listUnshareResources } from "./leftovers.js";

const options: UnshareOptions = { source: { debootstrap: { suite: "bookworm", variant: "minbase", include: ["python3"] } } };
const savedStateDir = process.env.KILN_STATE_DIR;
let driver: Driver<UnshareOptions>;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "kiln-unshare-test-"));
  // A state root of this file's own: the artefact store starts empty, and leftovers are looked for there.
  process.env.KILN_STATE_DIR = join(dir, "state");
  driver = unshare(pluginInit("driver", "unshare", dir, { info() {}, warn() {}, debug() {} }));
  // Builds (or finds) the Debian tree under the long hook timeout.
  await using test = createTestContext();
  await driver.resolveSource(test.ctx, options);
}, 600_000);
afterAll(async () => {
  if (savedStateDir === undefined) delete process.env.KILN_STATE_DIR;
  else process.env.KILN_STATE_DIR = savedStateDir;
  await rm(dir, { recursive: true, force: true });
});

async function launched(test: ReturnType<typeof createTestContext>) {
  return driver.launch(test.ctx, await driver.resolveSource(test.ctx, options), options);
}

/** A TCP server on the host's loopback only, answering `host`. */
async function hostOnlyListener() {
  const server = createServer((socket) => socket.end("host\n")).listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as { port: number }).port;
  return { port, [Symbol.asyncDispose]: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** What a connection from this host to 127.0.0.1:port reads. */
function readFromHost(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port });
    let text = "";
    socket.setTimeout(5000, () => socket.destroy(new Error("timed out")));
    socket.on("data", (chunk) => (text += chunk.toString()));
    socket.on("end", () => resolve(text));
    socket.on("error", reject);
  });
}

/** A process on the host only, named `name` (its argv[0]), stopped and waited for on dispose. */
async function hostOnlyProcess(name: string) {
  const child = spawn("bash", ["-c", `exec -a ${name} sleep 300`], { stdio: "ignore", timeout: 120_000, killSignal: "SIGKILL" });
  const exited = once(child, "exit");
  await expect.poll(async () => (await readFile(`/proc/${child.pid}/cmdline`, "utf8").catch(() => "")).startsWith(name)).toBe(true);
  return {
    pid: child.pid as number,
    [Symbol.asyncDispose]: async () => {
      child.kill("SIGKILL");
      await exited;
    },
  };
}

/** Connects from inside the machine to its 127.0.0.1:port and prints what it reads, or why it could not. */
const CONNECT_INSIDE = `python3 - "$PORT" <<'PY'
import socket, sys
try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) as s:
        print("read:", s.recv(100).decode().strip())
except ConnectionRefusedError:
    print("refused")
PY`;

/** Processes of the machine whose command line starts with `prefix`, from its own /proc. */
const COUNT_INSIDE = `for p in /proc/[0-9]*; do tr '\\0' ' ' < "$p/cmdline" 2>/dev/null; echo; done | grep -c "^$PREFIX" || true`;

describe("unshare driver: isolation", () => {
  it("does not let the machine reach a port only the host listens on (own network namespace)", async () => {
    await using listener = await hostOnlyListener();
    expect(await readFromHost(listener.port)).toBe("host\n");
    await using test = createTestContext();
    await using machine = await launched(test);
    const env = { PORT: String(listener.port) };
    expect((await machine.exec(CONNECT_INSIDE, { env })).stdout).toBe("refused\n");
    // Its own loopback, up, and nothing else: the same port number is free for the machine's own service.
    expect((await execOk(machine, "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '")).trim()).toBe("lo");
    await machine.exec(`(nohup python3 -c 'import socket; s = socket.create_server(("127.0.0.1", ${listener.port}))
while True: s.accept()[0].sendall(b"machine\\n")' >/dev/null 2>&1 &)`);
    await expect.poll(async () => (await machine.exec(CONNECT_INSIDE, { env })).stdout, { timeout: 20_000 }).toBe("read: machine\n");
    expect(await readFromHost(listener.port)).toBe("host\n");
  });

  it("does not show the machine a process only the host runs (own PID namespace)", async () => {
    await using hostProcess = await hostOnlyProcess("kiln-host-only");
    await using test = createTestContext();
    await using machine = await launched(test);
    expect((await machine.exec(COUNT_INSIDE, { env: { PREFIX: "kiln-host-only" } })).stdout).toBe("0\n");
    expect((await machine.exec(`kill -0 ${hostProcess.pid}`)).exitCode).not.toBe(0);
    // The machine's own PID 1 is the holder, and what the machine starts it sees.
    expect(await execOk(machine, "tr '\\0' ' ' < /proc/1/cmdline")).toMatch(/^\/bin\/sh -c echo ready/);
    await machine.exec("(nohup sleep 4242 >/dev/null 2>&1 &)");
    expect((await machine.exec(COUNT_INSIDE, { env: { PREFIX: "sleep 4242" } })).stdout).toBe("1\n");
  });

  it("sets its own hostname without changing the host's (own UTS namespace)", async () => {
    const before = hostname();
    await using test = createTestContext();
    await using machine = await launched(test);
    expect(await execOk(machine, "hostname kiln-unshare-machine && hostname")).toBe("kiln-unshare-machine\n");
    expect(hostname()).toBe(before);
  });

  it("ends every process of the machine, its PID 1 and unshare when the machine is removed", async () => {
    const test = createTestContext();
    const machine = await launched(test);
    await machine.exec("(nohup sleep 4343 >/dev/null 2>&1 &)");
    const live = await listUnshareResources(test.runId);
    // unshare and PID 1 (both named after the run), the sleep (rooted in the tree), and the tree.
    expect(live.filter((resource) => resource.startsWith("process")).length).toBeGreaterThanOrEqual(3);
    expect(live.some((resource) => resource.includes("sleep 4343"))).toBe(true);
    await machine[Symbol.asyncDispose]();
    await test.cleanup();
    expect(await listUnshareResources(test.runId)).toEqual([]);
    await expect(Promise.resolve().then(() => machine.exec("true"))).rejects.toThrow(/is not running/);
  });

  it("fails a launch on a tree without /bin/sh with unshare's error, and leaves nothing behind", async () => {
    // A mount point for /proc, and nothing else.
    await mkdir(join(dir, "not-a-rootfs", "proc"), { recursive: true });
    const tarball = join(dir, "not-a-rootfs.tar");
    await new Promise<void>((resolve, reject) =>
      spawn("tar", ["-cf", tarball, "-C", join(dir, "not-a-rootfs"), "."], { timeout: 30_000 }).on("close", (code) =>
        code === 0 ? resolve() : reject(new Error(`tar exited with ${code}`)),
      ),
    );
    const broken: UnshareOptions = { source: { tarball: "./not-a-rootfs.tar" } };
    const test = createTestContext({ cwd: dir });
    const failure = await driver.launch(test.ctx, await driver.resolveSource(test.ctx, broken), broken).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(KilnError);
    expect((failure as KilnError).message).toMatch(
      /unshare exited \(\d+\) before the machine was up: unshare: failed to execute \/bin\/sh/,
    );
    await test.cleanup();
    expect(await listUnshareResources(test.runId)).toEqual([]);
  });
});

describe("unshare driver: a bake through the engine with the shell provisioner", () => {
  /** Bakes one image from `verify`, as `kiln build` does, and removes the artefact afterwards. */
  async function bake(verify: unknown) {
    const image = {
      driver: "unshare",
      ...options,
      provision: [{ shell: { inline: ["echo baked-in-namespaces > /srv/index.html"] } }],
      verify,
    };
    await writeFile(join(dir, "kiln.yaml"), JSON.stringify({ images: { app: image } }, null, 2));
    const project = await loadProject(join(dir, "kiln.yaml"), { plugins: { registry: { drivers: { unshare }, provisioners: { shell } } } });
    const events: KilnEvent[] = [];
    const result = await new BuildRun({ project, kilnVersion: "test", onEvent: (event) => events.push(event) }).run();
    const artifact = result.records[0]?.artifact;
    // Nothing but the artefact of a successful bake: no machine, no process, no artefact of a failed one.
    const left = await listUnshareResources(result.runId);
    if (artifact) await driver.remove(artifact);
    expect(left.filter((resource) => !artifact || !resource.includes(artifact.id))).toEqual([]);
    const checks = events.flatMap((event) => (event.type === "verify.check" ? [{ check: event.check, ok: event.ok }] : []));
    return { result, artifact, checks };
  }

  it("bakes an image whose own service verify reaches, and which a host-only port or process cannot fool", async () => {
    await using listener = await hostOnlyListener();
    await using _hostProcess = await hostOnlyProcess("kiln-host-only");
    const runtime = { boot_script: "(nohup python3 -m http.server 8080 --bind 127.0.0.1 --directory /srv >/dev/null 2>&1 &)" };
    const { result, artifact, checks } = await bake({
      runtime,
      checks: [
        { http: { port: 8080, body_contains: "baked-in-namespaces" }, within: "20s" },
        { port: { port: listener.port, listening: false } },
        { process: { name: "kiln-host-only", running: false } },
      ],
    });
    expect(result.records[0]?.error).toBeUndefined();
    expect(result.ok).toBe(true);
    expect(checks.map((check) => check.ok)).toEqual([true, true, true]);
    expect(artifact?.files?.[0]).toMatchObject({ format: "tar", path: expect.stringContaining(join(dir, "state", "driver-unshare")) });
  });

  it("fails verify that expects the host's port or process inside the machine", async () => {
    await using listener = await hostOnlyListener();
    await using _hostProcess = await hostOnlyProcess("kiln-host-only");
    const { result } = await bake({
      // Short: they keep failing however long they are retried.
      checks: [
        { port: listener.port, within: "2s" },
        { process: "kiln-host-only", within: "2s" },
      ],
    });
    expect(result.ok).toBe(false);
    expect(result.records[0]?.error?.message).toMatch(/2 of 2 verify checks failed/);
  });
});

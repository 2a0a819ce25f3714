import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KilnError } from "@kiln/core";
import { listDockerResources, removeDockerResources } from "@kiln/driver-docker/testing";
import { connectSsh, type SshOptions } from "../src/index.js";
import { ensureSshdImage, generateKeyPair, startSshd, type KeyPair } from "../src/testing.js";
import { freePort } from "@kiln/test-suite";

const runId = `test-ssh-${randomBytes(4).toString("hex")}`;
let keys: KeyPair;
let local: string;

beforeAll(async () => {
  keys = generateKeyPair();
  local = await mkdtemp(join(tmpdir(), "kiln-ssh-test-"));
  await ensureSshdImage();
}, 900_000);

afterAll(async () => {
  // The local directory goes first: it must not outlive a run whose engine stopped answering.
  await rm(local, { recursive: true, force: true });
  await removeDockerResources(runId);
  expect(await listDockerResources(runId)).toEqual([]);
});

const sshd = (hostPort?: number) => startSshd({ runId, publicKey: keys.publicKey, ...(hostPort ? { hostPort } : {}) });
const login = (server: { host: string; port: number }, extra: Partial<SshOptions> = {}) =>
  connectSsh({ host: server.host, port: server.port, user: "root", privateKey: keys.privateKey, deadlineMs: 60_000, ...extra });

describe("connecting", () => {
  it("waits for sshd that is not up yet, then runs commands", async () => {
    const port = await freePort();
    const retries: unknown[] = [];
    const connecting = login({ host: "127.0.0.1", port }, { onRetry: (_attempt, error) => retries.push(error) });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await using _server = await sshd(port);
    await using machine = await connecting;
    expect(retries.length).toBeGreaterThan(0);
    expect(machine.id).toBe(`root@127.0.0.1:${port}`);
    expect(machine.hostKey).toMatch(/^ssh-ed25519 AAAA/);
    expect(machine.connection).toEqual({
      kind: "ssh",
      host: "127.0.0.1",
      port,
      user: "root",
      privateKey: keys.privateKey,
      hostKey: machine.hostKey,
    });
    expect((await machine.exec("echo up")).stdout).toBe("up\n");
  });

  it("gives up at the deadline with the address and a hint", async () => {
    const port = await freePort();
    const error = await login({ host: "127.0.0.1", port }, { deadlineMs: 1500 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KilnError);
    expect(error).toMatchObject({ code: "E_LAUNCH", message: expect.stringContaining(`root@127.0.0.1:${port} within 2s`) });
  });

  it("stops waiting when aborted", async () => {
    const port = await freePort();
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("user pressed Ctrl-C")), 500);
    await expect(login({ host: "127.0.0.1", port }, { signal: controller.signal })).rejects.toThrow("user pressed Ctrl-C");
  });

  it("prints an attach command that never contains the key", async () => {
    await using server = await sshd();
    await using machine = await login(server);
    expect(machine.attachCommand()).toMatch(new RegExp(`^ssh -i .* -p ${server.port} root@127\\.0\\.0\\.1$`));
    expect(machine.attachCommand()).not.toContain(keys.privateKey.split("\n")[1] ?? "");
  });
});

describe("exec", () => {
  it("streams output and returns exit codes, env, cwd and stdin", async () => {
    await using server = await sshd();
    await using machine = await login(server);
    const chunks: string[] = [];
    const result = await machine.exec("echo out; echo err >&2; exit 4", { onOutput: (stream, chunk) => chunks.push(`${stream}:${chunk}`) });
    expect(result).toEqual({ exitCode: 4, stdout: "out\n", stderr: "err\n" });
    expect(chunks).toEqual(expect.arrayContaining(["stdout:out\n", "stderr:err\n"]));
    const tricky = `it's "quoted" $HOME \`x\``;
    expect((await machine.exec(["printenv", "KILN_X"], { env: { KILN_X: tricky } })).stdout).toBe(`${tricky}\n`);
    expect((await machine.exec(["ls", "-d", "a b"], { cwd: "/" })).exitCode).not.toBe(0);
    expect((await machine.exec("pwd", { cwd: "/tmp" })).stdout).toBe("/tmp\n");
    expect((await machine.exec("cat", { stdin: "text" })).stdout).toBe("text");
    expect((await machine.exec("cat", { stdin: Buffer.from("bytes") })).stdout).toBe("bytes");
    expect((await machine.exec("cat", { stdin: Readable.from(["a", "b"]) })).stdout).toBe("ab");
    expect((await machine.exec("cat")).stdout).toBe("");
  });

  it("runs as another user through sudo, with env and cwd", async () => {
    await using server = await sshd();
    await using asKiln = await login(server, { user: "kiln" });
    expect((await asKiln.exec("id -un")).stdout).toBe("kiln\n");
    expect((await asKiln.exec("id -u", { user: "root" })).stdout).toBe("0\n");
    expect((await asKiln.exec("id -un; pwd; printenv V", { user: "nobody", env: { V: "v" }, cwd: "/tmp" })).stdout).toBe(
      "nobody\n/tmp\nv\n",
    );
    expect((await asKiln.exec("pwd", { user: "root", cwd: "/root" })).stdout).toBe("/root\n");
    expect((await asKiln.exec("pwd", { cwd: "/no/such/dir" })).exitCode).not.toBe(0);
    await using asRoot = await login(server);
    expect((await asRoot.exec("id -un", { user: "kiln" })).stdout).toBe("kiln\n");
    // The descriptor says how Kiln reaches root, for tools outside Kiln (Ansible's become).
    expect(asKiln.connection.become).toEqual({ method: "sudo", user: "root" });
    expect(asRoot.connection.become).toBeUndefined();
  });

  it("keeps env values off every command line on the machine (ps there shows no secret), with sudo and without", async () => {
    await using server = await sshd();
    await using asKiln = await login(server, { user: "kiln" });
    const secret = "s3cr3t-ssh-env-91c2";
    // Every process's command line on the machine, read from the host while the commands run.
    const commandLines = async () => {
      const { execFile } = await import("node:child_process");
      const script = "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done 2>/dev/null";
      return new Promise<string>((resolve) => execFile("docker", ["exec", server.id, "sh", "-c", script], (_e, stdout) => resolve(stdout)));
    };
    for (const user of ["root", undefined]) {
      const running = asKiln.exec('sleep 2; printf %s "$TOKEN" | wc -c', {
        env: { TOKEN: secret, OTHER: "it's" },
        ...(user ? { user } : {}),
      });
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const seen = await commandLines();
      expect(seen).toMatch(/sleep 2/);
      expect(seen).not.toContain(secret);
      expect((await running).stdout.trim()).toBe(String(secret.length));
    }
    // The command's own stdin still arrives whole after the environment.
    expect((await asKiln.exec("cat", { env: { A: "1" }, stdin: "input" })).stdout).toBe("input");
  });

  it("reports a command killed by a signal as 128 + its number, and says so", async () => {
    await using server = await sshd();
    await using machine = await login(server);
    const result = await machine.exec("echo before; kill -KILL $$");
    expect(result).toMatchObject({ exitCode: 137, signal: "KILL", stdout: "before\n" });
    expect(result.stderr).toContain("killed by signal KILL");
  });

  it("times out and aborts: rejects, and the command no longer runs", async () => {
    await using server = await sshd();
    await using machine = await login(server, { user: "kiln" });
    const started = Date.now();
    const timedOut = await machine.exec("sleep 31", { timeout: 500, user: "root" }).catch((e: unknown) => e);
    expect(timedOut).toMatchObject({ code: "E_TIMEOUT", message: "command timed out after 500ms" });
    expect(Date.now() - started).toBeLessThan(10_000);
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("stop now")), 300);
    await expect(machine.exec("sleep 32", { signal: controller.signal })).rejects.toThrow("stop now");
    const running = "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done";
    await expect.poll(async () => (await machine.exec(running)).stdout, { timeout: 30_000 }).not.toMatch(/sleep 3[12]/);
    expect((await machine.exec("echo still usable")).stdout).toBe("still usable\n");
  });
});

describe("files", () => {
  it("uploads and downloads files, directories and streams with their modes", async () => {
    await using server = await sshd();
    await using machine = await login(server);
    const dir = await mkdtemp(join(local, "files-"));
    await writeFile(join(dir, "script.sh"), "#!/bin/sh\necho hi\n", { mode: 0o755 });
    await mkdir(join(dir, "tree/sub"), { recursive: true });
    await writeFile(join(dir, "tree/top.txt"), "top");
    await writeFile(join(dir, "tree/sub/secret.txt"), "secret", { mode: 0o600 });

    await machine.upload(join(dir, "script.sh"), "/opt/new/dir/run.sh");
    await machine.upload(join(dir, "script.sh"), "/opt/new/private.sh", { mode: 0o700 });
    await machine.upload(join(dir, "tree"), "/srv/tree");
    await machine.upload(Readable.from([Buffer.from("stream"), Buffer.from("ed")]), "/etc/kiln/streamed.conf", { mode: 0o640 });
    const check =
      "stat -c '%n %a' /opt/new/dir/run.sh /opt/new/private.sh /srv/tree/top.txt /srv/tree/sub/secret.txt /etc/kiln/streamed.conf";
    expect((await machine.exec(check)).stdout).toBe(
      "/opt/new/dir/run.sh 755\n/opt/new/private.sh 700\n/srv/tree/top.txt 644\n/srv/tree/sub/secret.txt 600\n/etc/kiln/streamed.conf 640\n",
    );
    expect((await machine.exec("/opt/new/dir/run.sh; cat /etc/kiln/streamed.conf")).stdout).toBe("hi\nstreamed");

    await machine.download("/srv/tree", join(dir, "back/tree"));
    await machine.download("/etc/kiln/streamed.conf", join(dir, "back/deep/streamed.conf"));
    expect(await readFile(join(dir, "back/tree/sub/secret.txt"), "utf8")).toBe("secret");
    expect((await stat(join(dir, "back/tree/sub/secret.txt"))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(dir, "back/tree/top.txt"), "utf8")).toBe("top");
    expect(await readFile(join(dir, "back/deep/streamed.conf"), "utf8")).toBe("streamed");
  });

  it("explains a missing remote file and a directory the login user cannot write", async () => {
    await using server = await sshd();
    await using machine = await login(server, { user: "kiln" });
    await expect(machine.download("/no/such/file", join(local, "x"))).rejects.toThrow("cannot download /no/such/file to");
    const denied = await machine.upload(Readable.from(["x"]), "/root/x.txt").catch((e: unknown) => e);
    expect(denied).toMatchObject({
      code: "E_PROVISION",
      message: expect.stringContaining("permission denied"),
      hint: expect.stringContaining("login user"),
    });
  });
});

describe("host key and reconnect", () => {
  it("pins the host key: another server on the same address is refused with a clear error", async () => {
    const first = await sshd();
    await using machine = await login(first);
    const pinned = machine.hostKey;
    await first.remove();
    await using _second = await sshd(first.port);
    const error = await machine.reconnect().catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: "E_LAUNCH",
      message: expect.stringMatching(/^host key changed for 127\.0\.0\.1:\d+: expected SHA256:/),
    });
    // A key pinned by the caller is refused at once, without waiting for the deadline.
    const started = Date.now();
    await expect(login(first, { hostKey: pinned ?? "", deadlineMs: 60_000 })).rejects.toThrow(/host key changed/);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("reconnects after the machine drops every connection and restarts sshd (expect_disconnect)", async () => {
    await using server = await sshd();
    await using machine = await login(server);
    await machine.exec("echo 1 > /tmp/marker");
    const lost = await machine.exec("sleep 0.5; kill -KILL -1; sleep 5").catch((e: unknown) => e);
    expect(lost).toMatchObject({ code: "E_PROVISION", message: expect.stringContaining("lost") });
    await expect(machine.exec("true")).rejects.toThrow(/lost/);
    await machine.reconnect();
    expect((await machine.exec("cat /tmp/marker")).stdout).toBe("1\n");
  });

  it("disposes idempotently: closes the connection, leaves the machine running", async () => {
    await using server = await sshd();
    const machine = await login(server);
    await machine[Symbol.asyncDispose]();
    await machine[Symbol.asyncDispose]();
    await expect(machine.exec("true")).rejects.toThrow(/closed/);
    await using again = await login(server, { ...(machine.hostKey ? { hostKey: machine.hostKey } : {}) });
    expect((await again.exec("echo alive")).stdout).toBe("alive\n");
  });
});

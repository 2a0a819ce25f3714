import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { access, chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, dirname, isAbsolute, join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it, onTestFinished } from "vitest";
import type { Artifact, DockerConnection, SshConnection, StandardSchemaV1 } from "../types.js";
import { outsideCommand } from "./connection.js";
import { type DriverOperations, lazyDriver } from "./lazy.js";
import { withFileLock } from "./lock.js";
import { shellJoin, shellQuote } from "./shell.js";
import { findExecutable, missingTools } from "./tools.js";

const execFileAsync = promisify(execFile);

async function tempDir(mode?: number): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "kiln-kit-test-"));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  if (mode !== undefined) await chmod(dir, mode);
  return dir;
}

/** Runs an argv (no shell) and returns its stdout. */
async function run(argv: readonly string[]): Promise<string> {
  const [file, ...args] = argv;
  if (file === undefined) throw new Error("empty argv");
  return (await execFileAsync(file, args)).stdout;
}

/** The words `/bin/sh` makes of a command line, as the remote shell of an SSH server would. */
async function shellWords(line: string): Promise<string[]> {
  const stdout = await run(["/bin/sh", "-c", `set -- ${line}; printf '%s\\036' "$@"`]);
  return stdout.split("\u001e").slice(0, -1);
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve: () => void = () => {};
  const promise = new Promise<void>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("lazyDriver", () => {
  interface Opts {
    region: string;
  }
  const schema: StandardSchemaV1<unknown, Opts> = {
    "~standard": { version: 1, vendor: "kiln-test", validate: (value) => ({ value: value as Opts }) },
  };
  const artifact: Artifact = { id: "img-1", driver: "fake", image: "web", tags: [], labels: {} };
  const opts: Opts = { region: "eu-west-1" };

  function operations(calls: string[]): DriverOperations<Opts> {
    const unused = async (): Promise<never> => {
      throw new Error("not used in this test");
    };
    return {
      resolveSource: unused,
      launch: unused,
      capture: unused,
      launchArtifact: unused,
      findArtifacts: async (query, options) => {
        calls.push(`find ${query.ref} in ${options?.region}`);
        return [artifact];
      },
      tag: async (target, tag) => {
        calls.push(`tag ${target.id} ${tag}`);
      },
      remove: async (target) => {
        calls.push(`remove ${target.id}`);
      },
    };
  }

  function counted(load: (attempt: number) => Promise<DriverOperations<Opts>>) {
    const state = { loads: 0 };
    const driver = lazyDriver<Opts>(
      { name: "fake", schema, connectionKinds: ["ssh"], preflight: () => [{ message: "fake-cli not found on this host" }] },
      () => {
        state.loads += 1;
        return load(state.loads);
      },
    );
    return { driver, state };
  }

  it("does not load the platform code for its name, schema, connection kinds or preflight", async () => {
    const { driver, state } = counted(async () => operations([]));
    expect(driver.name).toBe("fake");
    expect(driver.schema).toBe(schema);
    expect(await driver.schema["~standard"].validate(opts)).toEqual({ value: opts });
    expect(driver.connectionKinds).toEqual(["ssh"]);
    expect(await driver.preflight?.(opts)).toEqual([{ message: "fake-cli not found on this host" }]);
    expect(state.loads).toBe(0);
  });

  it("loads the platform code once, on the first operation, however many calls follow or run in parallel", async () => {
    const calls: string[] = [];
    const { driver, state } = counted(async () => operations(calls));
    const [found] = await Promise.all([driver.findArtifacts({ ref: "prod" }, opts), driver.tag(artifact, "prod", opts)]);
    expect(state.loads).toBe(1);
    expect(found).toEqual([artifact]);

    await driver.remove(artifact, opts);
    await driver.findArtifacts({ ref: "staging" }, opts);
    expect(state.loads).toBe(1);
    expect(calls).toEqual(["find prod in eu-west-1", "tag img-1 prod", "remove img-1", "find staging in eu-west-1"]);
  });

  it("fails the calls waiting for a load that failed, and loads again on the next call", async () => {
    const calls: string[] = [];
    const { driver, state } = counted(async (attempt) => {
      if (attempt === 1) throw new Error("cannot import the SDK");
      return operations(calls);
    });
    const results = await Promise.allSettled([driver.findArtifacts({}, opts), driver.remove(artifact, opts)]);
    expect(results.map((result) => result.status)).toEqual(["rejected", "rejected"]);
    for (const result of results)
      if (result.status === "rejected") expect(result.reason).toHaveProperty("message", "cannot import the SDK");
    expect(state.loads).toBe(1);

    await driver.remove(artifact, opts);
    await driver.tag(artifact, "prod", opts);
    expect(state.loads).toBe(2);
    expect(calls).toEqual(["remove img-1", "tag img-1 prod"]);
  });

  it("retries a load that threw synchronously", async () => {
    let attempts = 0;
    const driver = lazyDriver<Opts>({ name: "fake", schema }, () => {
      attempts += 1;
      if (attempts === 1) throw new Error("synchronous failure");
      return Promise.resolve(operations([]));
    });
    await expect(driver.findArtifacts({})).rejects.toThrow("synchronous failure");
    await expect(driver.findArtifacts({})).resolves.toEqual([artifact]);
    expect(attempts).toBe(2);
  });
});

describe("findExecutable and missingTools", () => {
  it("finds sh on PATH as an absolute, executable path, and nothing for a name that is not installed", async () => {
    const sh = await findExecutable("sh");
    expect(sh).toBeDefined();
    expect(isAbsolute(sh ?? "")).toBe(true);
    await expect(access(sh ?? "", constants.X_OK)).resolves.toBeUndefined();
    expect(await run([sh ?? "", "-c", "echo found"])).toBe("found\n");
    expect(await findExecutable(`kiln-no-such-tool-${randomBytes(4).toString("hex")}`)).toBeUndefined();
  });

  it("searches the PATH given, in order, skipping files that are not executable", async () => {
    const dir = await tempDir();
    const [first, second, third] = [join(dir, "first"), join(dir, "second"), join(dir, "third")];
    for (const bin of [first, second, third]) await mkdir(bin);
    await writeFile(join(first, "kiln-tool"), "#!/bin/sh\necho first\n", { mode: 0o644 });
    await writeFile(join(second, "kiln-tool"), "#!/bin/sh\necho second\n", { mode: 0o755 });
    await writeFile(join(third, "kiln-tool"), "#!/bin/sh\necho third\n", { mode: 0o755 });
    const path = [first, "", second, third].join(delimiter);

    expect(await findExecutable("kiln-tool", path)).toBe(join(second, "kiln-tool"));
    expect(await findExecutable("kiln-tool", first)).toBeUndefined();
    expect(await findExecutable("kiln-tool", "")).toBeUndefined();
  });

  it("takes a command with a slash as a path, found only when it is executable", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, "script"), "#!/bin/sh\n", { mode: 0o755 });
    await writeFile(join(dir, "data"), "text\n", { mode: 0o644 });
    expect(await findExecutable(join(dir, "script"), "")).toBe(join(dir, "script"));
    expect(await findExecutable(join(dir, "data"))).toBeUndefined();
    expect(await findExecutable(join(dir, "missing"))).toBeUndefined();
  });

  it("reports each missing tool as '<cmd> not found on this host' with an install hint, and nothing for installed ones", async () => {
    const missing = `kiln-no-such-tool-${randomBytes(4).toString("hex")}`;
    const problems = await missingTools([
      { command: "sh", install: "apt-get install -y dash" },
      { command: missing, install: "apt-get install -y kiln-tools" },
      { command: "tar", install: "apt-get install -y tar" },
    ]);
    expect(problems).toEqual([{ message: `${missing} not found on this host`, hint: "install it: apt-get install -y kiln-tools" }]);
    expect(await missingTools([{ command: "sh", install: "apt-get install -y dash" }])).toEqual([]);
    expect(await missingTools([])).toEqual([]);
  });
});

describe("shellQuote and shellJoin", () => {
  const TRICKY = [
    "plain",
    "two words",
    "  leading and trailing  ",
    "it's",
    "'",
    "''",
    `"double quoted"`,
    `mixed "double" and 'single'`,
    "$HOME",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell parameter expansion that must stay literal
    "${HOME}",
    "$(id -u)",
    "`id -u`",
    "back\\slash",
    "trailing backslash\\",
    "\\'",
    "line one\nline two",
    "tab\there",
    "*",
    "~",
    "a;b && c | d > /dev/null",
    "-n",
    "#not a comment",
    "!bang",
    "",
  ];

  it("passes every argument through /bin/sh unchanged", async () => {
    const stdout = await run(["/bin/sh", "-c", `printf '%s\\n' ${shellJoin(TRICKY)}`]);
    expect(stdout).toBe(TRICKY.map((value) => `${value}\n`).join(""));
  });

  it.each(TRICKY)("quotes %j as one word that sh reads back as it was", async (value) => {
    expect(await run(["/bin/sh", "-c", `printf '%s' ${shellQuote(value)}`])).toBe(value);
    expect(await shellWords(shellQuote(value))).toEqual([value]);
  });

  it("quotes every word in single quotes, closing and escaping embedded single quotes", () => {
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    expect(shellJoin(["echo", "a b", "$HOME"])).toBe(`'echo' 'a b' '$HOME'`);
    expect(shellJoin([])).toBe("");
  });
});

describe("outsideCommand", () => {
  describe("docker", () => {
    const connection: DockerConnection = { kind: "docker", container: "c0ffee", host: "tcp://10.0.0.5:2376", user: "app" };

    it("runs docker exec against the connection's engine, as root unless root is not wanted, writing no files", async () => {
      const workDir = await tempDir(0o700);
      expect(await outsideCommand(connection, ["id", "-u"], { workDir })).toEqual([
        "docker",
        "-H",
        "tcp://10.0.0.5:2376",
        "exec",
        "-u",
        "root",
        "c0ffee",
        "id",
        "-u",
      ]);
      expect(await outsideCommand(connection, ["id", "-u"], { workDir, root: false })).toEqual([
        "docker",
        "-H",
        "tcp://10.0.0.5:2376",
        "exec",
        "-u",
        "app",
        "c0ffee",
        "id",
        "-u",
      ]);
      expect(await readdir(workDir)).toEqual([]);
    });

    it("passes the engine's TLS material, verifying the engine only when the connection says so", async () => {
      const workDir = await tempDir(0o700);
      const tlsFiles = ["--tlscacert", "/certs/ca.pem", "--tlscert", "/certs/cert.pem", "--tlskey", "/certs/key.pem"];
      const verified = await outsideCommand({ ...connection, tls: { certPath: "/certs", verify: true } }, ["true"], { workDir });
      expect(verified).toEqual(["docker", "-H", "tcp://10.0.0.5:2376", "--tlsverify", ...tlsFiles, "exec", "-u", "root", "c0ffee", "true"]);
      const unverified = await outsideCommand({ ...connection, tls: { certPath: "/certs", verify: false } }, ["true"], { workDir });
      expect(unverified).toEqual(["docker", "-H", "tcp://10.0.0.5:2376", "--tls", ...tlsFiles, "exec", "-u", "root", "c0ffee", "true"]);
    });

    it("reaches a real container as root, or as the connection's user when root is not wanted", async () => {
      const dir = await tempDir();
      const tree = await minimalTree(join(dir, "rootfs"), ["/bin/sh", "/usr/bin/id", "/bin/sleep"]);
      const suffix = randomBytes(4).toString("hex");
      const image = `kiln-test/kit-outside-command:${suffix}`;
      const container = `kiln-test-kit-outside-command-${suffix}`;
      onTestFinished(async () => {
        await execFileAsync("docker", ["rm", "-f", container]).catch(() => {});
        await execFileAsync("docker", ["rmi", "-f", image]).catch(() => {});
      });
      await execFileAsync("tar", ["-C", tree, "-cf", join(dir, "rootfs.tar"), "."]);
      await execFileAsync("docker", ["import", join(dir, "rootfs.tar"), image]);
      // No network: the test needs none, and it must not depend on the engine's bridge.
      await run(["docker", "run", "-d", "--name", container, "--network", "none", "--user", "4321:4321", image, "/bin/sleep", "600"]);

      const host = process.env.DOCKER_HOST ?? "unix:///var/run/docker.sock";
      const docker: DockerConnection = { kind: "docker", container, host, user: "4321" };
      const workDir = await tempDir(0o700);
      expect(await run(await outsideCommand(docker, ["id", "-u"], { workDir }))).toBe("0\n");
      expect(await run(await outsideCommand(docker, ["id", "-u"], { workDir, root: false }))).toBe("4321\n");
      const echo = ["/bin/sh", "-c", `printf '%s' "$1"`, "sh", "it's $HOME"];
      expect(await run(await outsideCommand(docker, echo, { workDir }))).toBe("it's $HOME");
    });
  });

  describe("ssh", () => {
    async function keyPair(dir: string, name: string): Promise<{ privateKey: string; publicKey: string }> {
      await execFileAsync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "kiln-test", "-f", join(dir, name)]);
      const publicKey = (await readFile(join(dir, `${name}.pub`), "utf8")).split(" ").slice(0, 2).join(" ");
      return { privateKey: await readFile(join(dir, name), "utf8"), publicKey };
    }

    async function sshConnection(overrides: Partial<SshConnection> = {}): Promise<{ connection: SshConnection; userKey: string }> {
      const keys = await tempDir();
      const user = await keyPair(keys, "user");
      const host = await keyPair(keys, "host");
      const connection: SshConnection = {
        kind: "ssh",
        host: "10.0.0.5",
        port: 2222,
        user: "admin",
        privateKey: user.privateKey,
        hostKey: host.publicKey,
        become: { method: "sudo", user: "root" },
        ...overrides,
      };
      return { connection, userKey: user.publicKey };
    }

    /** `ssh-ed25519 AAAA…` as ssh-keygen derives it from a private key file (which it refuses when others can read it). */
    const publicKeyOf = async (keyFile: string) => (await run(["ssh-keygen", "-y", "-f", keyFile])).split(" ").slice(0, 2).join(" ");
    const after = (argv: string[], flag: string) => argv[argv.indexOf(flag) + 1] ?? "";

    it("writes the private key as a 0600 file ssh can use, and pins the host key as [host]:port in known_hosts", async () => {
      const { connection, userKey } = await sshConnection();
      const workDir = await tempDir(0o700);
      const argv = await outsideCommand(connection, ["id", "-u"], { workDir });

      const key = after(argv, "-i");
      expect(key.startsWith(`${workDir}/`)).toBe(true);
      expect((await stat(key)).mode & 0o777).toBe(0o600);
      expect(await readFile(key, "utf8")).toBe(connection.privateKey);
      expect(await publicKeyOf(key)).toBe(userKey);

      const options = argv.filter((_, index) => argv[index - 1] === "-o");
      // Quoted for ssh, which splits this option's value at spaces.
      const knownHosts =
        /^UserKnownHostsFile="(.*)"$/.exec(options.find((option) => option.startsWith("UserKnownHostsFile=")) ?? "")?.[1] ?? "";
      expect(knownHosts.startsWith(`${workDir}/`)).toBe(true);
      expect(await readFile(knownHosts, "utf8")).toBe(`[10.0.0.5]:2222 ${connection.hostKey}\n`);
      expect((await stat(knownHosts)).mode & 0o777).toBe(0o600);
      expect(await run(["ssh-keygen", "-F", "[10.0.0.5]:2222", "-f", knownHosts])).toContain(connection.hostKey);
      expect(options).toContain("StrictHostKeyChecking=yes");
      expect(options).not.toContain("StrictHostKeyChecking=no");

      // ssh itself reads the options as intended (-G prints the resulting configuration without connecting).
      const config = (await run(["ssh", "-G", ...argv.slice(1, -1)])).split("\n");
      expect(config).toEqual(
        expect.arrayContaining([
          "user admin",
          "hostname 10.0.0.5",
          "port 2222",
          "stricthostkeychecking true",
          "batchmode yes",
          "identitiesonly yes",
          `identityfile ${key}`,
          `userknownhostsfile ${knownHosts}`,
        ]),
      );
      expect(argv[0]).toBe("ssh");
      expect(argv.at(-2)).toBe("admin@10.0.0.5");
    });

    it("works from a work directory whose path holds a space", async () => {
      const { connection } = await sshConnection({ port: 2222 });
      const workDir = join(await tempDir(0o700), "with space");
      await mkdir(workDir, { mode: 0o700 });
      const argv = await outsideCommand(connection, ["true"], { workDir });
      const config = (await run(["ssh", "-G", ...argv.slice(1, -1)])).split("\n");
      expect(config).toContain(`userknownhostsfile ${join(workDir, "known_hosts")}`);
      expect(argv).toContain(`UserKnownHostsFile="${join(workDir, "known_hosts")}"`);
    });

    it("names a host on port 22 without brackets in known_hosts", async () => {
      const { connection } = await sshConnection({ port: 22 });
      const workDir = await tempDir(0o700);
      const argv = await outsideCommand(connection, ["true"], { workDir });
      expect(after(argv, "-p")).toBe("22");
      const knownHosts = join(workDir, "known_hosts");
      expect(argv).toContain(`UserKnownHostsFile="${knownHosts}"`);
      expect(await readFile(knownHosts, "utf8")).toBe(`10.0.0.5 ${connection.hostKey}\n`);
      expect(await run(["ssh-keygen", "-F", "10.0.0.5", "-f", knownHosts])).toContain(connection.hostKey);
    });

    it("adds a newline to a private key that lacks one (ssh refuses the key otherwise)", async () => {
      const { connection, userKey } = await sshConnection();
      const workDir = await tempDir(0o700);
      const argv = await outsideCommand({ ...connection, privateKey: connection.privateKey.trimEnd() }, ["true"], { workDir });
      expect(await readFile(after(argv, "-i"), "utf8")).toBe(connection.privateKey);
      expect(await publicKeyOf(after(argv, "-i"))).toBe(userKey);
    });

    it("becomes root with sudo -n only when the connection has become and root is wanted", async () => {
      const workDir = await tempDir(0o700);
      const command = ["id", "-u"];
      const remote = async (connection: SshConnection, root?: boolean) =>
        shellWords((await outsideCommand(connection, command, { workDir, ...(root === undefined ? {} : { root }) })).at(-1) ?? "");

      const { connection: withBecome } = await sshConnection();
      expect(await remote(withBecome)).toEqual(["sudo", "-n", "-u", "root", "--", "id", "-u"]);
      expect(await remote(withBecome, true)).toEqual(["sudo", "-n", "-u", "root", "--", "id", "-u"]);
      expect(await remote(withBecome, false)).toEqual(["id", "-u"]);

      const { connection: asRoot } = await sshConnection({ user: "root" });
      const { become: _become, ...withoutBecome } = asRoot;
      expect(await remote(withoutBecome)).toEqual(["id", "-u"]);
    });

    it("sends the command as one line the remote shell splits back into the same words", async () => {
      const { connection } = await sshConnection();
      const workDir = await tempDir(0o700);
      const command = ["/bin/sh", "-c", `printf '%s\\n' "$1" > "$2"`, "sh", "it's $HOME; `id`", "/tmp/out file"];
      const argv = await outsideCommand(connection, command, { workDir, root: false });
      expect(await shellWords(argv.at(-1) ?? "")).toEqual(command);
    });
  });

  it("attaches to an LXC container with lxc-attach, its lxcpath and a cleared environment", async () => {
    const workDir = await tempDir(0o700);
    const argv = await outsideCommand({ kind: "lxc", name: "web-1", lxcpath: "/var/lib/lxc" }, ["id", "-u"], { workDir });
    expect(argv).toEqual(["lxc-attach", "-P", "/var/lib/lxc", "-n", "web-1", "--clear-env", "--", "id", "-u"]);
    expect(await readdir(workDir)).toEqual([]);
  });

  it("enters a chroot tree with chroot, and runs the command inside it", async () => {
    const dir = await tempDir();
    const tree = await minimalTree(join(dir, "tree"), ["/bin/sh"]);
    await writeFile(join(tree, "etc", "kiln-marker"), "inside the tree\n");
    const command = ["/bin/sh", "-c", `read line < /etc/kiln-marker; echo "$line"`];
    const workDir = await tempDir(0o700);
    const argv = await outsideCommand({ kind: "chroot", path: tree }, command, { workDir });
    expect(argv).toEqual(["chroot", tree, ...command]);
    expect(await run(argv)).toBe("inside the tree\n");
  });
});

/** A root file system holding only the given host binaries, their shared libraries and a passwd file with root. */
async function minimalTree(root: string, binaries: string[]): Promise<string> {
  for (const binary of binaries) {
    const { stdout } = await execFileAsync("ldd", [binary]);
    const libraries = [...stdout.matchAll(/(\/\S+) \(0x/g)].map((match) => match[1]).filter((path): path is string => path !== undefined);
    for (const path of [binary, ...libraries]) {
      await mkdir(join(root, dirname(path)), { recursive: true });
      await copyFile(path, join(root, path));
      await chmod(join(root, path), 0o755);
    }
  }
  await mkdir(join(root, "etc"), { recursive: true });
  await writeFile(join(root, "etc", "passwd"), "root:x:0:0:root:/:/bin/sh\n");
  await writeFile(join(root, "etc", "group"), "root:x:0:\n");
  return root;
}

describe("withFileLock", () => {
  it("returns the work's result, creates the lock's directory, and frees the lock after work that threw", async () => {
    const lock = join(await tempDir(), "locks", "build");
    expect(await withFileLock(lock, async () => 42)).toBe(42);
    await expect(withFileLock(lock, async () => Promise.reject(new Error("build failed")))).rejects.toThrow("build failed");
    // waitMs 0: a lock left behind by the failed work would make this throw ELOCKED at once.
    expect(await withFileLock(lock, async () => "again", { waitMs: 0 })).toBe("again");
  });

  it("makes a second holder wait until the first one's work has finished", async () => {
    const lock = join(await tempDir(), "build.lock");
    const log: string[] = [];
    const firstStarted = deferred();
    const releaseFirst = deferred();
    const first = withFileLock(lock, async () => {
      log.push("first starts");
      firstStarted.resolve();
      await releaseFirst.promise;
      log.push("first ends");
    });
    await firstStarted.promise;
    const second = withFileLock(lock, async () => {
      log.push("second starts");
      await sleep(10);
      log.push("second ends");
    });
    // Gives the second holder several attempts at the lock while the first one holds it.
    await sleep(800);
    log.push("first released");
    releaseFirst.resolve();
    await Promise.all([first, second]);
    expect(log).toEqual(["first starts", "first released", "first ends", "second starts", "second ends"]);
  });

  it("does not run the work when the signal is already aborted", async () => {
    const lock = join(await tempDir(), "build.lock");
    let ran = false;
    const error = await withFileLock(
      lock,
      async () => {
        ran = true;
      },
      { signal: AbortSignal.abort() },
    ).catch((e: unknown) => e);
    expect(error).toHaveProperty("name", "AbortError");
    expect(ran).toBe(false);
  });

  it("stops waiting for the lock when the signal is aborted, and never runs that work", async () => {
    const lock = join(await tempDir(), "build.lock");
    const log: string[] = [];
    const firstStarted = deferred();
    const releaseFirst = deferred();
    const first = withFileLock(lock, async () => {
      firstStarted.resolve();
      await releaseFirst.promise;
      log.push("first ends");
    });
    await firstStarted.promise;
    const controller = new AbortController();
    const waiting = withFileLock(lock, async () => void log.push("aborted holder ran"), { signal: controller.signal });
    await sleep(300);
    controller.abort();
    await expect(waiting).rejects.toHaveProperty("name", "AbortError");
    expect(log).toEqual([]);

    releaseFirst.resolve();
    await first;
    expect(await withFileLock(lock, async () => "free", { waitMs: 0 })).toBe("free");
    expect(log).toEqual(["first ends"]);
  });

  it("gives up with ELOCKED once waitMs has passed while another holder keeps the lock", async () => {
    const lock = join(await tempDir(), "build.lock");
    const firstStarted = deferred();
    const releaseFirst = deferred();
    const first = withFileLock(lock, async () => {
      firstStarted.resolve();
      await releaseFirst.promise;
    });
    await firstStarted.promise;
    let ran = false;
    const error = await withFileLock(
      lock,
      async () => {
        ran = true;
      },
      { waitMs: 0 },
    ).catch((e: unknown) => e);
    releaseFirst.resolve();
    await first;
    expect(error).toHaveProperty("code", "ELOCKED");
    expect(ran).toBe(false);
  });
});

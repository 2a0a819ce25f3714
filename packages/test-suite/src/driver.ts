import { mkdtemp, readFile, rm, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KilnError, LABELS, pluginInit, type Artifact, type Driver, type DriverFactory, type Machine } from "@kiln/core";
import { bakeWith, CONFORMANCE_DRIVER } from "./bake.js";
import { createTestContext } from "./context.js";
import { runOutside } from "./outside.js";

export interface DriverFixture {
  /** The driver factory under test, as its package default-exports it. */
  factory: DriverFactory<unknown>;
  /**
   * Driver options (including `source`) that launch a small Linux machine with /bin/sh, coreutils and python3.
   * A function runs once before the suite (e.g. to build a base image).
   */
  options: Record<string, unknown> | (() => Promise<Record<string, unknown>>);
  /** Every live resource carrying `dev.kiln.build=<runId>`: containers, instances, key pairs, images… */
  listResources: (runId: string) => Promise<string[]>;
  /** Per-test timeout in ms. Default 120 000. */
  timeout?: number;
}

/** The conformance suite every Kiln driver runs, against its real platform. */
export function testDriver(name: string, fixture: DriverFixture): void {
  const timeout = fixture.timeout ?? 120_000;
  describe(`driver conformance: ${name}`, { timeout }, () => {
    let options: Record<string, unknown>;
    let driver: Driver<unknown>;
    let local: string;
    const opts = () => driver.schema["~standard"].validate(options) as { value: unknown };

    const savedStateDir = process.env.KILN_STATE_DIR;
    beforeAll(async () => {
      options = typeof fixture.options === "function" ? await fixture.options() : fixture.options;
      local = await mkdtemp(join(tmpdir(), "kiln-driver-test-"));
      // A state root of the suite's own (a file-based driver's artefact store starts empty), shared by the suite's driver
      // and the bakes it runs through the loader, which both know the driver by one name.
      process.env.KILN_STATE_DIR ??= join(local, "state");
      driver = fixture.factory(pluginInit("driver", CONFORMANCE_DRIVER, process.cwd(), { info() {}, warn() {}, debug() {} }));
    }, 600_000);
    afterAll(async () => {
      // The shared machine first (see shared()); a launch that failed halfway still registered what it made with the context.
      await sharedMachine?.then(({ machine }) => machine[Symbol.asyncDispose]()).catch(() => undefined);
      await sharedTest?.cleanup();
      if (savedStateDir === undefined) delete process.env.KILN_STATE_DIR;
      else process.env.KILN_STATE_DIR = savedStateDir;
      await rm(local, { recursive: true, force: true });
    });

    async function launched(test: ReturnType<typeof createTestContext>) {
      const source = await driver.resolveSource(test.ctx, opts().value);
      return driver.launch(test.ctx, source, opts().value);
    }

    /**
     * One machine for the tests that only run commands and move files on it, launched by the first of them and disposed
     * after the suite: a VM driver boots each machine for a minute or more. Tests that capture, dispose or bake launch their own.
     */
    let sharedMachine: Promise<{ test: ReturnType<typeof createTestContext>; machine: Machine }> | undefined;
    let sharedTest: ReturnType<typeof createTestContext> | undefined;
    function shared() {
      sharedMachine ??= (async () => {
        sharedTest = createTestContext({ outlivesTest: true });
        return { test: sharedTest, machine: await launched(sharedTest) };
      })();
      return sharedMachine;
    }

    /** Captures the source (after `prepare`) as an artefact, hands it to `work`, and removes it afterwards. */
    async function withArtifact(
      work: (test: ReturnType<typeof createTestContext>, artifact: Artifact) => Promise<void>,
      prepare: (machine: Machine) => Promise<unknown> = async () => {},
    ): Promise<void> {
      await using test = createTestContext();
      const machine = await launched(test);
      await prepare(machine);
      const artifact = await driver.capture(test.ctx, machine, { labels: { [LABELS.build]: test.runId }, tags: [] }, opts().value);
      await machine[Symbol.asyncDispose]();
      try {
        await work(test, artifact);
      } finally {
        await driver.remove(artifact, opts().value);
      }
    }

    /** Processes of the machine whose command line starts with `prefix`, from /proc (no ps needed). */
    const running = async (machine: Machine, prefix: string) =>
      (
        await machine.exec(
          [
            "/bin/sh",
            "-c",
            'for p in /proc/[0-9]*; do tr "\\0" " " < "$p/cmdline" 2>/dev/null; echo; done | grep -c "^$1" || true',
            "sh",
            prefix,
          ],
          { user: "root" },
        )
      ).stdout.trim();

    it("has a name and validates its options", async () => {
      expect(driver.name).toBeTruthy();
      const result = await driver.schema["~standard"].validate(options);
      expect(result.issues).toBeUndefined();
      const wrong = await driver.schema["~standard"].validate({ ...options, no_such_option_exists: true });
      expect(wrong.issues?.length).toBeGreaterThan(0);
    });

    it("launches a machine that runs commands with exit codes, env, cwd, stdin and streamed output", async () => {
      const { machine } = await shared();
      const chunks: string[] = [];
      const hello = await machine.exec("echo hello; echo oops >&2", { onOutput: (_stream, chunk) => chunks.push(chunk) });
      expect(hello).toMatchObject({ exitCode: 0, stdout: "hello\n", stderr: "oops\n" });
      expect(chunks.join("")).toContain("hello");
      expect((await machine.exec("exit 3")).exitCode).toBe(3);
      expect((await machine.exec(["printenv", "KILN_X"], { env: { KILN_X: "y z" } })).stdout).toBe("y z\n");
      expect((await machine.exec("pwd", { cwd: "/tmp" })).stdout).toBe("/tmp\n");
      expect((await machine.exec("cat", { stdin: "from stdin" })).stdout).toBe("from stdin");
      expect((await machine.exec("id -u", { user: "root" })).stdout).toBe("0\n");
    });

    it("runs a command as a non-root user, who can read the system and work in /tmp", async () => {
      const { machine } = await shared();
      const result = await machine.exec(
        "id -un; test -r /etc/passwd && echo readable; ls / >/dev/null && echo listable; touch /tmp/mine && echo writable",
        { user: "nobody", cwd: "/tmp" },
      );
      expect(result).toMatchObject({ exitCode: 0, stdout: "nobody\nreadable\nlistable\nwritable\n" });
      expect((await machine.exec("stat -c %U /tmp/mine", { user: "root" })).stdout).toBe("nobody\n");
    });

    it("stops a command at its timeout and when its signal aborts, and the command no longer runs", async () => {
      const { machine } = await shared();
      const timedOut = await machine.exec("sleep 611", { timeout: 1000 }).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(timedOut).toBeInstanceOf(KilnError);
      expect((timedOut as KilnError).code).toBe("E_TIMEOUT");
      await expect.poll(() => running(machine, "sleep 611"), { timeout: 15_000 }).toBe("0");

      const controller = new AbortController();
      const aborted = machine.exec("sleep 622", { signal: controller.signal }).then(
        () => undefined,
        (error: unknown) => error,
      );
      await expect.poll(() => running(machine, "sleep 622"), { timeout: 15_000 }).toBe("1");
      controller.abort(new KilnError("E_INTERRUPTED", "stopped by the test"));
      expect(await aborted).toMatchObject({ code: "E_INTERRUPTED" });
      await expect.poll(() => running(machine, "sleep 622"), { timeout: 15_000 }).toBe("0");
    });

    it("describes its machine's connection so the platform's own CLI reaches it from outside, as root", async () => {
      const { machine } = await shared();
      const connection = machine.connection;
      if (driver.connectionKinds) expect(driver.connectionKinds).toContain(connection.kind);
      await machine.exec("echo made-by-kiln > /tmp/kiln-outside.txt", { user: "root" });
      const outside = await runOutside(connection, ["/bin/sh", "-c", "id -u; cat /tmp/kiln-outside.txt"]);
      expect(outside, `${outside.argv.join(" ")}: ${outside.stderr}`).toMatchObject({ exitCode: 0, stdout: "0\nmade-by-kiln\n" });
    });

    it("creates nothing while planning (kiln plan)", async () => {
      await using test = createTestContext({ planning: true });
      const resolved = await driver.resolveSource(test.ctx, opts().value).then(
        (source) => source,
        (error: unknown) => {
          // Planning may say the source is not available yet; it must not build or pull it.
          if (error instanceof KilnError && error.code === "E_SOURCE") return undefined;
          throw error;
        },
      );
      if (resolved) expect(resolved.id).toBeTruthy();
      expect(await fixture.listResources(test.runId)).toEqual([]);
    });

    it("resolves a source from a parent artefact (from:) and launches on it", async () => {
      await withArtifact(
        async (_test, parent) => {
          await using child = createTestContext({ parent });
          const source = await driver.resolveSource(child.ctx, opts().value);
          await using machine = await driver.launch(child.ctx, source, opts().value);
          expect((await machine.exec("cat /etc/kiln-parent")).stdout).toBe("from the parent\n");
        },
        (machine) => machine.exec("echo 'from the parent' > /etc/kiln-parent", { user: "root" }),
      );
    });

    it("labels every resource with the run id while it lives", async () => {
      const { test } = await shared();
      expect((await fixture.listResources(test.runId)).length).toBeGreaterThan(0);
    });

    it("uploads and downloads files, directories and streams", async () => {
      const { machine } = await shared();
      await writeFile(join(local, "one.txt"), "one");
      await mkdir(join(local, "tree/sub"), { recursive: true });
      await writeFile(join(local, "tree/sub/two.txt"), "two");
      await writeFile(join(local, "tree/top.txt"), "top");
      await machine.upload(join(local, "one.txt"), "/opt/kiln/one.txt", { mode: 0o600 });
      await machine.upload(join(local, "tree"), "/opt/kiln/tree");
      await machine.upload(Readable.from([Buffer.from("streamed")]), "/opt/kiln/stream.txt");
      expect(
        (await machine.exec("cat /opt/kiln/one.txt /opt/kiln/tree/top.txt /opt/kiln/tree/sub/two.txt /opt/kiln/stream.txt")).stdout,
      ).toBe("onetoptwostreamed");
      expect((await machine.exec("stat -c %a /opt/kiln/one.txt")).stdout.trim()).toBe("600");

      await machine.download("/opt/kiln/one.txt", join(local, "back/one.txt"));
      await machine.download("/opt/kiln/tree", join(local, "back/tree"));
      expect(await readFile(join(local, "back/one.txt"), "utf8")).toBe("one");
      expect(await readFile(join(local, "back/tree/sub/two.txt"), "utf8")).toBe("two");
      expect(await readFile(join(local, "back/tree/top.txt"), "utf8")).toBe("top");
    });

    it("captures an artefact with its labels, launches it with runtime inputs, finds, tags and removes it", async () => {
      await using test = createTestContext();
      const machine = await launched(test);
      await machine.exec("echo baked > /baked.txt");
      const labels = { [LABELS.image]: "conformance", [LABELS.build]: test.runId, [LABELS.key]: "k1" };
      const artifact = await driver.capture(test.ctx, machine, { labels, tags: [] }, opts().value);
      await machine[Symbol.asyncDispose]();
      try {
        expect(artifact.labels).toMatchObject(labels);
        const runtime = { env: { KILN_PORT: "8080" }, files: { "/etc/kiln-runtime.conf": { content: "mode=test", mode: 0o640 } } };
        await using fresh = await driver.launchArtifact(test.ctx, artifact, runtime, opts().value);
        expect((await fresh.exec("cat /baked.txt")).stdout).toBe("baked\n");
        expect((await fresh.exec("printenv KILN_PORT")).stdout).toBe("8080\n");
        expect((await fresh.exec("cat /etc/kiln-runtime.conf; stat -c ' %a' /etc/kiln-runtime.conf")).stdout).toBe("mode=test 640\n");
        expect((await driver.findArtifacts({ ref: artifact.id }, opts().value)).map((item) => item.id)).toEqual([artifact.id]);

        const found = await driver.findArtifacts({ labels: { [LABELS.build]: test.runId } }, opts().value);
        expect(found.map((item) => item.id)).toContain(artifact.id);
        const tag = `kiln-conformance/${test.runId.toLowerCase()}:v1`;
        await driver.tag(artifact, tag, opts().value);
        const tagged = await driver.findArtifacts({ labels: { [LABELS.key]: "k1", [LABELS.build]: test.runId } }, opts().value);
        expect(tagged.find((item) => item.id === artifact.id)?.tags).toContain(tag);
      } finally {
        await driver.remove(artifact, opts().value);
      }
      expect(await driver.findArtifacts({ labels: { [LABELS.build]: test.runId } }, opts().value)).toEqual([]);
    });

    it("runs a boot script before the machine's own start, with the runtime environment (if the driver supports it)", async (context) => {
      if (!driver.runtimeSupport?.bootScript) return context.skip("the driver declares no boot-script support");
      await withArtifact(async (test, artifact) => {
        const runtime = { env: { STAGE: "staging" }, bootScript: 'echo "configured for $STAGE" > /tmp/boot.log' };
        await using fresh = await driver.launchArtifact(test.ctx, artifact, runtime, opts().value);
        await expect.poll(async () => (await fresh.exec("cat /tmp/boot.log")).stdout).toBe("configured for staging\n");
      });
    });

    it("makes asked-for ports reachable from the host (if the driver supports it)", async (context) => {
      if (!driver.runtimeSupport?.hostPorts) return context.skip("the driver declares no host-port support");
      await withArtifact(async (test, artifact) => {
        await using fresh = await driver.launchArtifact(test.ctx, artifact, { ports: [8765] }, opts().value);
        await fresh.exec(
          "mkdir -p /srv/web && echo served > /srv/web/index.html && (nohup python3 -m http.server 8765 --directory /srv/web >/dev/null 2>&1 &)",
        );
        // Any address this host reaches: loopback for published container ports, an instance's or a VM's own address.
        const address = await fresh.hostAddress?.(8765);
        expect(address?.host).toBeTruthy();
        const get = () =>
          fetch(`http://${address?.host}:${address?.port}/`, { signal: AbortSignal.timeout(2000) }).then(
            (r) => r.text(),
            () => "",
          );
        await expect.poll(get, { timeout: 20_000 }).toBe("served\n");
      });
    });

    it("moves a tag from one artefact to another, and removing an artefact twice is harmless", async () => {
      await withArtifact(async (test, first) => {
        const machine = await launched(test);
        const second = await driver.capture(test.ctx, machine, { labels: { [LABELS.build]: test.runId }, tags: [] }, opts().value);
        await machine[Symbol.asyncDispose]();
        try {
          const tag = `kiln-conformance/${test.runId.toLowerCase()}:moving`;
          await driver.tag(first, tag, opts().value);
          await driver.tag(second, tag, opts().value);
          expect((await driver.findArtifacts({ ref: tag }, opts().value)).map((item) => item.id)).toEqual([second.id]);
          const all = await driver.findArtifacts({ labels: { [LABELS.build]: test.runId } }, opts().value);
          expect(all.find((item) => item.id === first.id)?.tags ?? []).not.toContain(tag);
        } finally {
          await driver.remove(second, opts().value);
          await driver.remove(second, opts().value);
        }
        expect((await driver.findArtifacts({ ref: second.id }, opts().value)).map((item) => item.id)).toEqual([]);
      });
    });

    it("disposes machines idempotently and leaves nothing behind", async () => {
      const test = createTestContext();
      const machine = await launched(test);
      await machine[Symbol.asyncDispose]();
      await machine[Symbol.asyncDispose]();
      await test.cleanup();
      expect(await fixture.listResources(test.runId)).toEqual([]);
    });

    it("a bake whose provisioner fails exits with the error and leaves nothing behind", async () => {
      const result = await bakeWith({ driver: fixture.factory, options, commands: ["echo started", "echo broken >&2; exit 7"] });
      expect(result.ok).toBe(false);
      expect(result.records[0]?.error?.message).toMatch(/exited with 7/);
      expect(await fixture.listResources(result.runId)).toEqual([]);
    });

    it("a bake interrupted during provisioning (Ctrl-C) leaves nothing behind", async () => {
      const result = await bakeWith({
        driver: fixture.factory,
        options,
        commands: ["echo ready; sleep 600"],
        onEvent: (event, _run, abort) => {
          if (event.type === "output" && event.line === "ready") abort();
        },
      });
      expect(result.interrupted).toBe(true);
      expect(result.records[0]?.error?.code).toBe("E_INTERRUPTED");
      expect(await fixture.listResources(result.runId)).toEqual([]);
    });

    // "as it begins": aborted before the driver's call starts; "during": once the call is under way. Either way the call is
    // abandoned mid-flight and returns later: what it creates must still be removed.
    it.each([
      ["as launch begins", "launch", false],
      ["during launch", "launch", true],
      ["as capture begins", "capture", false],
      ["during capture", "capture", true],
    ] as const)("a bake interrupted (Ctrl-C) %s leaves nothing behind", async (_when, step, later) => {
      const result = await bakeWith({
        driver: fixture.factory,
        options,
        commands: ["echo provisioned > /provisioned.txt"],
        onEvent: (event, _run, abort) => {
          if (event.type !== "step.start" || event.step !== step) return;
          if (later) setImmediate(abort);
          else abort();
        },
      });
      expect(result.interrupted).toBe(true);
      expect(result.records[0]?.error?.code).toBe("E_INTERRUPTED");
      expect(result.events.filter((event) => event.type === "cleanup.failed")).toEqual([]);
      expect(await fixture.listResources(result.runId)).toEqual([]);
    });

    it("a bake whose verify fails removes the artefact and the verify machine", async () => {
      const result = await bakeWith({
        driver: fixture.factory,
        options,
        commands: ["echo hi > /hi.txt"],
        verify: { checks: [{ file: { path: "/hi.txt", contains: "hi" } }, { command: "test -e /missing" }] },
      });
      expect(result.ok).toBe(false);
      expect(result.records[0]?.error?.message).toMatch(/1 of 2 verify checks failed[\s\S]*test -e \/missing/);
      expect(await fixture.listResources(result.runId)).toEqual([]);
    });

    it("a successful bake produces an artefact with provenance labels and cleans up the build machine", async () => {
      const checks = [
        { command: { run: "cat /ok.txt", stdout_contains: "ok" } },
        { file: { path: "/ok.txt", mode: "0644", owner: "root" } },
        { user: "root" },
        { package: "coreutils" },
      ];
      const result = await bakeWith({
        driver: fixture.factory,
        options,
        commands: ["echo ok > /ok.txt && chmod 0644 /ok.txt"],
        verify: { runtime: { env: { A: "1" } }, checks },
      });
      const artifact = result.records[0]?.artifact;
      try {
        expect(result.ok, JSON.stringify(result.records[0]?.error)).toBe(true);
        expect(
          result.events.filter((event) => event.type === "verify.check").map((event) => event.type === "verify.check" && event.ok),
        ).toEqual([true, true, true, true]);
        expect(artifact?.labels).toMatchObject({
          [LABELS.image]: "conformance",
          [LABELS.build]: result.runId,
          [LABELS.key]: result.records[0]?.bakeKey,
        });
        for (const label of Object.values(LABELS)) expect(artifact?.labels).toHaveProperty([label]);
        expect((await fixture.listResources(result.runId)).filter((resource) => !resource.includes(artifact?.id ?? "?"))).toEqual([]);
      } finally {
        if (artifact) await driver.remove(artifact, opts().value);
      }
    });
  });
}

import { execFile, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { access, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "@kiln/core";
import { type BakeContext, defineDriver, KilnError, parseDuration, type PreflightProblem, type SourceRef, timeoutSchema } from "@kiln/core";
import { artifactStore, missingTools, runHost, withFileLock } from "@kiln/core/kit";
import {
  debootstrapRecipeSchema,
  findRootfs,
  pickDebianMirror,
  readAptSources,
  rootfsSource,
  sha256File,
  sourceTarball,
  storedTarball,
} from "@kiln/debootstrap";
import { writeImageMetadata } from "./image.js";
import { destroy, LxcMachine } from "./machine.js";
import { bridgeProblems, type Network, planNetwork, setupBridge } from "./network.js";

const templateSchema = z.strictObject({
  name: z
    .string()
    .regex(/^[a-z][\w-]*$/, "an lxc-templates name such as debian")
    .default("debian")
    .describe('The lxc-templates template to run. Default "debian".'),
  release: z
    .string()
    .regex(/^[a-z][\w-]*$/, "a release such as bookworm")
    .describe('Release the template builds, e.g. "bookworm".'),
  packages: z
    .array(z.string().regex(/^[a-z0-9][a-z0-9+.-]*$/, "a Debian package name"))
    .optional()
    .describe('Extra packages the template installs, e.g. ["python3"].'),
});

export const lxcOptionsSchema = z.strictObject({
  source: z
    .union([
      z.strictObject({
        debootstrap: debootstrapRecipeSchema.describe(
          "A Debian tree built by debootstrap, cached by recipe: { suite, include, mirror, … }. Include systemd-sysv so it can boot.",
        ),
      }),
      z.strictObject({
        tarball: z.string().min(1).describe("A root file system tarball (e.g. one Kiln baked), relative to the bake file."),
      }),
      z.strictObject({
        template: templateSchema.describe(
          "A tree made by lxc-templates with the host's Debian mirror, built once and cached as a tarball: { name, release, packages }.",
        ),
      }),
      z.strictObject({
        container: z
          .string()
          .regex(/^[\w.-]+$/, "a container name")
          .describe("A stopped container of lxcpath, copied."),
      }),
    ])
    .optional()
    .describe(
      "{ debootstrap: { suite, include: [systemd-sysv] } }, { template: { release: bookworm } }, { tarball: ./rootfs.tar }, or { container: name } (stopped).",
    ),
  network: z.enum(["bridge", "none"]).default("bridge").describe("bridge (a veth on `bridge`, default) or none (no network at all)."),
  bridge: z
    .string()
    .regex(/^[\w.-]{1,15}$/, "a network interface name")
    .default("lxcbr0")
    .describe('Host bridge the veth joins when network is "bridge". Default "lxcbr0".'),
  setup_network: z.boolean().default(false).describe("Start lxcbr0 and let its traffic through a FORWARD DROP policy, if needed."),
  lxcpath: z
    .string()
    .regex(/^\/./, "an absolute path")
    .default("/var/lib/lxc")
    .describe('Directory LXC keeps containers in. Default "/var/lib/lxc"; another one needs host_access: true.'),
  config: z
    .array(z.string().regex(/^lxc\.[\w.]+\s*=/, "an LXC config line: lxc.key = value"))
    .optional()
    .describe("More lines for the container's config (lxc.cgroup2.memory.max = 512M)."),
  boot_timeout: timeoutSchema.default("60s").describe("How long init may take to come up."),
});

/** Options of the `lxc` driver. */
export type LxcOptions = z.infer<typeof lxcOptionsSchema>;

const TOOLS = ["lxc-start", "lxc-attach", "lxc-stop", "lxc-destroy", "lxc-info", "lxc-ls"].map((command) => ({
  command,
  install: "apt-get install -y lxc",
}));

/**
 * Bakes LXC system-container images with the real `lxc` tools: a container is unpacked from a root file system (debootstrap,
 * an lxc-templates build, a tarball or a parent artefact), boots its own init, is provisioned through `lxc-attach`, stopped
 * cleanly and captured as a rootfs tarball plus its config (as Packer's LXC builder does) and LXD/Incus image metadata, in a
 * local artefact store. Needs root.
 */
export const lxc = defineDriver<LxcOptions>((init) => {
  const store = artifactStore({ dir: join(init.stateDir, "artifacts"), driver: "lxc" });
  const templates = join(init.cacheDir, "templates");

  /** Creates, configures and boots a container from `tarball`, registered for removal before anything exists. */
  async function start(ctx: BakeContext, tarball: string, role: "build" | "verify", opts: LxcOptions, setup: Partial<StartSetup> = {}) {
    const safeImage = ctx.image.replace(/[^A-Za-z0-9_.-]/g, "-");
    const name = `kiln-${ctx.runId}-${safeImage}-${role}-${randomBytes(2).toString("hex")}`;
    const dir = join(opts.lxcpath, name);
    ctx.defer(() => destroy(name, opts.lxcpath), {
      resource: `LXC container ${name}`,
      manualCommand: `lxc-stop -k -n ${name} -P ${opts.lxcpath}; lxc-destroy -n ${name} -P ${opts.lxcpath}`,
    });
    if (opts.network === "bridge" && opts.setup_network) await setupBridge(opts.bridge);
    await mkdir(join(dir, "rootfs"), { recursive: true, mode: 0o750 });
    await runHost("tar", ["--numeric-owner", "-xpf", tarball, "-C", join(dir, "rootfs")]);
    await access(join(dir, "rootfs", "sbin", "init")).catch(() => {
      throw new KilnError("E_LAUNCH", `the root file system of ${ctx.image} has no /sbin/init, so it cannot boot as a system container`, {
        hint: "include an init: debootstrap { include: [systemd-sysv] }, or start from a template source",
      });
    });
    let network: Network = { config: [] };
    await planNetwork(opts.network, opts.bridge, opts.lxcpath, async (planned) => {
      network = planned;
      await writeFile(join(dir, "config"), containerConfig(name, safeImage, dir, planned, opts, setup.env ?? {}), { mode: 0o640 });
    });
    const machine = new LxcMachine({
      name,
      lxcpath: opts.lxcpath,
      ...(setup.env ? { env: setup.env } : {}),
      ...(network.address ? { address: network.address } : {}),
      ...(setup.ports ? { ports: setup.ports } : {}),
    });
    await setup.beforeBoot?.(join(dir, "rootfs"));
    await runHost("lxc-start", ["-n", name, "-P", opts.lxcpath, "-d"]).catch((error: Error) => {
      throw new KilnError("E_LAUNCH", `lxc-start ${name} failed: ${error.message}`, {
        hint: `lxc-start -n ${name} -P ${opts.lxcpath} -F shows why`,
      });
    });
    await waitForInit(ctx, machine, parseDuration(opts.boot_timeout));
    if (network.resolver) await machine.lendResolver(network.resolver);
    return machine;
  }

  return {
    name: "lxc",
    schema: lxcOptionsSchema,
    // Verify reaches a port at the container's address on the bridge; user data goes to cloud-init's NoCloud seed.
    runtimeSupport: { bootScript: true, userData: true, hostPorts: true },
    connectionKinds: ["lxc"],
    hostPaths: (opts) =>
      opts.source && "tarball" in opts.source ? [{ path: ["source", "tarball"], value: opts.source.tarball, access: "read" }] : [],
    // What reaches beyond the container must be acknowledged (host_access: true), like a Docker volume: raw config can mount
    // host paths, setup_network changes the host's network, and another lxcpath writes containers wherever it points.
    hostAccess: (opts) => [
      ...(opts.config?.length ? [{ path: ["config"], what: "raw LXC config lines (mounts, capabilities, devices)" }] : []),
      ...(opts.setup_network ? [{ path: ["setup_network"], what: `starts ${opts.bridge} and adds iptables rules on this host` }] : []),
      ...(opts.lxcpath !== "/var/lib/lxc" ? [{ path: ["lxcpath"], what: `creates containers under ${opts.lxcpath} on this host` }] : []),
    ],

    async preflight(opts) {
      const problems: PreflightProblem[] = [];
      if (process.getuid?.() !== 0)
        problems.push({ message: "the lxc driver needs root (privileged containers)", hint: "run kiln as root" });
      problems.push(...(await missingTools(TOOLS)));
      if (opts.network === "bridge" && !opts.setup_network) problems.push(...(await bridgeProblems(opts.bridge)));
      const recipe = opts.source && "debootstrap" in opts.source ? opts.source.debootstrap : undefined;
      if (recipe && !(await findRootfs(recipe).catch(() => undefined)))
        problems.push(...(await missingTools([{ command: "debootstrap", install: "apt-get install -y debootstrap" }])));
      if (opts.source && "template" in opts.source)
        problems.push(...(await missingTools([{ command: "lxc-create", install: "apt-get install -y lxc lxc-templates" }])));
      return problems;
    },

    async resolveSource(ctx, opts) {
      const source = opts.source;
      if (!ctx.parent && source && "template" in source) return templateSource(ctx, source.template, templates);
      if (!ctx.parent && source && "container" in source)
        return containerSource(ctx, source.container, opts.lxcpath, join(init.cacheDir, "containers"));
      const resolved = await rootfsSource(ctx, source, store, "LXC");
      if (!resolved) throw new KilnError("E_CONFIG", `image "${ctx.image}" has an unknown source`);
      return resolved;
    },

    launch: (ctx, source, opts) => start(ctx, sourceTarball(source), "build", opts),

    async capture(ctx, machine, target) {
      if (!(machine instanceof LxcMachine)) throw new KilnError("E_CAPTURE", `machine ${machine.id} was not launched by the lxc driver`);
      await machine.restoreResolver();
      await machine.stop();
      const work = await mkdtemp(join(tmpdir(), `kiln-${ctx.runId}-capture-`));
      try {
        await runHost(
          "tar",
          ["--numeric-owner", "--one-file-system", "-C", join(machine.dir, "rootfs"), "-cf", join(work, "rootfs.tar"), "."],
          "E_CAPTURE",
        );
        // The config a person would start the image with: everything but this build's name, paths and address.
        await writeFile(join(work, "config"), portableConfig());
        const metadata = await writeImageMetadata(work, ctx.image, target.labels);
        const artifact = await store.add({
          image: ctx.image,
          labels: target.labels,
          files: [
            { from: join(work, "rootfs.tar"), format: "tar" },
            { from: join(work, "config"), format: "lxc-config" },
            { from: metadata, format: "lxd-metadata" },
          ],
        });
        ctx.defer(() => store.remove(artifact.id), {
          when: "failure",
          resource: `LXC artefact ${artifact.id}`,
          manualCommand: `rm -rf ${join(store.dir, artifact.id)}`,
        });
        return artifact;
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    },

    async launchArtifact(ctx, artifact, runtime, opts) {
      const tarball = (await storedTarball(store, artifact, "LXC", "E_LAUNCH")).path;
      const machine = await start(ctx, tarball, "verify", opts, {
        env: runtime.env ?? {},
        ports: runtime.ports ?? [],
        // Before init starts, as a deployment's configuration would be there: files, and user data for cloud-init.
        beforeBoot: async (rootfs) => {
          const files = { ...runtime.files };
          if (runtime.userData) {
            files["/var/lib/cloud/seed/nocloud/user-data"] = { content: runtime.userData, mode: 0o600 };
            files["/var/lib/cloud/seed/nocloud/meta-data"] = { content: `instance-id: ${ctx.runId}\n`, mode: 0o644 };
          }
          for (const [path, file] of Object.entries(files)) await writeInside(rootfs, path, file.content, file.mode ?? 0o644);
        },
      });
      if (runtime.bootScript) await machine.runBootScript(runtime.bootScript, ctx.signal);
      return machine;
    },

    findArtifacts: (query) => store.find(query),
    tag: (artifact, tag) => store.tag(artifact.id, tag),
    remove: (artifact) => store.remove(artifact.id),
  };
});

interface StartSetup {
  env: Record<string, string>;
  ports: number[];
  beforeBoot: (rootfs: string) => Promise<void>;
}

/** The container's config: Debian's common settings, its tree, a hostname, its network, and the user's extra lines. */
function containerConfig(
  name: string,
  hostname: string,
  dir: string,
  network: Network,
  opts: LxcOptions,
  env: Record<string, string>,
): string {
  return `${[
    "lxc.include = /usr/share/lxc/config/debian.common.conf",
    `lxc.rootfs.path = dir:${join(dir, "rootfs")}`,
    `lxc.uts.name = ${hostname.slice(0, 63)}`,
    ...network.config,
    // The runtime environment reaches init (and what it starts), as a deployment's would; names only go on no command line.
    ...Object.entries(env).map(([key, value]) => `lxc.environment = ${key}=${value}`),
    ...(opts.config ?? []),
    `# ${name}, created by Kiln`,
  ].join("\n")}\n`;
}

/** The config shipped with the artefact: what `lxc-create -t none` plus this would need to boot it elsewhere. */
function portableConfig(): string {
  return [
    "lxc.include = /usr/share/lxc/config/debian.common.conf",
    "lxc.net.0.type = veth",
    "lxc.net.0.link = lxcbr0",
    "lxc.net.0.flags = up",
    "",
  ].join("\n");
}

/** Waits for the container's init: systemd says running (or degraded: a unit failed, which checks judge); other inits answer attach. */
async function waitForInit(ctx: BakeContext, machine: LxcMachine, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    ctx.signal.throwIfAborted();
    const state = await machine
      .exec("command -v systemctl >/dev/null || { echo no-systemd; exit 0; }; systemctl is-system-running --wait", {
        timeout: 15_000,
        signal: ctx.signal,
      })
      .catch((error: Error) => ({ exitCode: -1, stdout: "", stderr: error.message }));
    last = `${state.stdout}${state.stderr}`.trim();
    if (/^(running|degraded|no-systemd)$/m.test(state.stdout.trim())) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new KilnError("E_LAUNCH", `the init of ${machine.id} did not come up in ${timeoutMs / 1000}s (last: ${last || "no answer"})`, {
    hint: "raise boot_timeout, or check the image boots: lxc-start -F",
  });
}

/** Writes a file into a stopped container's tree from inside it (`chroot`), so a symlink in the image cannot lead outside. */
async function writeInside(rootfs: string, path: string, content: string, mode: number): Promise<void> {
  const script = 'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"';
  await new Promise<void>((resolve, reject) => {
    const child = spawn("chroot", [rootfs, "/bin/sh", "-c", script, "sh", path, mode.toString(8)], { stdio: ["pipe", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new KilnError("E_LAUNCH", `cannot write ${path}: ${stderr.trim()}`))));
    child.stdin.end(content);
  });
}

/**
 * An lxc-templates build (`lxc-create -t debian -- -r bookworm`), made once per recipe and kept as a tarball in the driver's
 * cache: the template takes about a minute. The mirror is the host's (the template reads MIRROR and SECURITY_MIRROR).
 */
async function templateSource(ctx: BakeContext, template: z.infer<typeof templateSchema>, cacheDir: string): Promise<SourceRef> {
  const sources = await readAptSources();
  const mirror = pickDebianMirror(sources, template.release) ?? "http://deb.debian.org/debian";
  const security = sources.find((source) => source.suites.some((suite) => suite.includes("security")))?.uri ?? mirror;
  const key = createHash("sha256")
    .update(JSON.stringify({ ...template, mirror, security }))
    .digest("hex")
    .slice(0, 16);
  const tarball = join(cacheDir, key, "rootfs.tar");
  const description = `lxc template ${template.name} ${template.release}`;
  const built = () =>
    access(tarball).then(
      () => true,
      () => false,
    );
  if (!(await built())) {
    if (ctx.planning) throw new KilnError("E_SOURCE", `${description} is not built yet`);
    await withFileLock(join(cacheDir, key), async () => {
      if (await built()) return;
      const lxcpath = await mkdtemp(join(tmpdir(), "kiln-lxc-template-"));
      const name = `kiln-template-${key}`;
      try {
        const packages = template.packages?.length ? [`--packages=${template.packages.join(",")}`] : [];
        ctx.log.info(`lxc: building ${description} (about a minute, once)`);
        await new Promise<void>((resolve, reject) =>
          execFile(
            "lxc-create",
            ["-n", name, "-P", lxcpath, "-t", template.name, "--", "-r", template.release, ...packages],
            { env: { ...process.env, MIRROR: mirror, SECURITY_MIRROR: security }, maxBuffer: 64 << 20, signal: ctx.signal },
            (error, _stdout, stderr) =>
              error
                ? reject(
                    new KilnError("E_SOURCE", `lxc-create -t ${template.name} failed: ${stderr.trim().split("\n").slice(-5).join("\n")}`),
                  )
                : resolve(),
          ),
        );
        await mkdir(join(cacheDir, key), { recursive: true });
        await runHost("tar", ["--numeric-owner", "-C", join(lxcpath, name, "rootfs"), "-cf", `${tarball}.partial`, "."], "E_LAUNCH");
        await runHost("mv", [`${tarball}.partial`, tarball]);
      } finally {
        await destroy(name, lxcpath).catch(() => undefined);
        await rm(lxcpath, { recursive: true, force: true });
      }
    });
  }
  return { id: `template:${key}`, digest: `${key}@${await sha256File(tarball)}`, description, details: { tarball, mirror } };
}

/**
 * An existing (stopped) container of `lxcpath` to start from: its tree is copied into a tarball in the driver's cache, and
 * that copy's checksum is the source's digest, so a changed container rebakes what is built on it.
 */
async function containerSource(ctx: BakeContext, name: string, lxcpath: string, cacheDir: string): Promise<SourceRef> {
  const state = (await runHost("lxc-info", ["-n", name, "-P", lxcpath, "-sH"], "E_LAUNCH").catch(() => "")).trim();
  if (state === "")
    throw new KilnError("E_SOURCE", `container ${name} does not exist in ${lxcpath}`, {
      hint: `lxc-ls -P ${lxcpath} lists the containers`,
    });
  if (state !== "STOPPED")
    throw new KilnError("E_SOURCE", `container ${name} is ${state.toLowerCase()}: a source must be stopped to be copied consistently`, {
      hint: `lxc-stop -n ${name} -P ${lxcpath}`,
    });
  const config = await readFile(join(lxcpath, name, "config"), "utf8");
  const rootfs = /^lxc\.rootfs\.path\s*=\s*(?:dir:)?(\S+)/m.exec(config)?.[1] ?? join(lxcpath, name, "rootfs");
  await mkdir(cacheDir, { recursive: true });
  const tarball = join(cacheDir, `${name}.tar`);
  if (
    ctx.planning &&
    !(await access(tarball).then(
      () => true,
      () => false,
    ))
  )
    throw new KilnError("E_SOURCE", `container ${name} has not been copied yet`);
  if (!ctx.planning) {
    await runHost("tar", ["--numeric-owner", "--one-file-system", "-C", rootfs, "-cf", `${tarball}.partial`, "."], "E_LAUNCH");
    await runHost("mv", [`${tarball}.partial`, tarball]);
  }
  return { id: `container:${name}`, digest: await sha256File(tarball), description: `container ${name}`, details: { tarball } };
}

export default lxc;

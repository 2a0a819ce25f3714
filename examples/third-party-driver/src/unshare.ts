import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { z } from "zod";
import { type BakeContext, defineDriver, KilnError, type PreflightProblem } from "@kiln/core";
import { artifactStore, missingTools } from "@kiln/core/kit";
import { type DebootstrapRecipe, debootstrapRecipeSchema, findRootfs, rootfsSource, sourceTarball, storedTarball } from "@kiln/debootstrap";
import { run, TAR_TIMEOUT_MS, UnshareMachine } from "./machine.js";

/** Options of the `unshare` driver. */
export interface UnshareOptions {
  /**
   * The tree to start from: `{ debootstrap: { suite: "bookworm" } }` builds a Debian tree once (cached under the recipe's key),
   * `{ tarball: "./rootfs.tar" }` is a root file system tarball relative to the bake file. Not needed for an image built `from:`.
   */
  source?: { debootstrap: DebootstrapRecipe } | { tarball: string } | undefined;
}

export const unshareOptionsSchema: z.ZodType<UnshareOptions> = z.strictObject({
  source: z
    .union([z.strictObject({ debootstrap: debootstrapRecipeSchema }), z.strictObject({ tarball: z.string().min(1) })])
    .optional()
    .describe("{ debootstrap: { suite } } to build a Debian tree, or { tarball: ./rootfs.tar } (relative to the bake file)."),
});

/** Where machines' trees live while they run: transient, one directory per machine named after its run. */
export const MACHINES_DIR: string = join(tmpdir(), "kiln-unshare");

/**
 * Bakes root file system tarballs inside Linux namespaces: the tree is unpacked, a small PID 1 holds new mount, UTS, IPC,
 * network (loopback only) and PID namespaces open with `unshare`, provisioners run through `nsenter`, and the tree is captured
 * as a tarball into a local artefact store. No daemon, no init system. Needs root; not a security boundary (no user namespace).
 */
export const unshare = defineDriver<UnshareOptions>((init) => {
  const store = artifactStore({ dir: join(init.stateDir, "artifacts"), driver: "unshare" });

  /** Starts a machine on `tarball`, registered for removal before anything exists. */
  async function start(ctx: BakeContext, tarball: string, role: "build" | "verify", env: Record<string, string> = {}) {
    const name = `kiln-${ctx.runId}-${ctx.image.replace(/[^A-Za-z0-9_.-]/g, "-")}-${role}-${randomBytes(2).toString("hex")}`;
    const machine = new UnshareMachine({ name, dir: join(MACHINES_DIR, name), env });
    ctx.defer(() => machine[Symbol.asyncDispose](), { resource: `unshare machine ${name}`, manualCommand: () => machine.removeCommand() });
    await machine.start(tarball, ctx.signal);
    return machine;
  }

  return {
    name: "unshare",
    schema: unshareOptionsSchema,
    // Its own network namespace: nothing inside is reachable from the host, so no host ports (http checks run from inside).
    runtimeSupport: { bootScript: true },
    connectionKinds: ["chroot"],
    hostPaths: (opts) =>
      opts.source && "tarball" in opts.source ? [{ path: ["source", "tarball"], value: opts.source.tarball, access: "read" }] : [],

    async preflight(opts) {
      const problems: PreflightProblem[] = [];
      if (process.getuid?.() !== 0)
        problems.push({ message: "the unshare driver needs root (it creates namespaces and mounts /proc)", hint: "run kiln as root" });
      const tools = [
        { command: "unshare", install: "apt-get install -y util-linux" },
        { command: "nsenter", install: "apt-get install -y util-linux" },
        { command: "ip", install: "apt-get install -y iproute2" },
        { command: "tar", install: "apt-get install -y tar" },
      ];
      const recipe = opts.source && "debootstrap" in opts.source ? opts.source.debootstrap : undefined;
      // debootstrap is only needed when the tree is not built yet; finding out reads the host's apt sources, nothing more.
      if (recipe && !(await findRootfs(recipe).catch(() => undefined)))
        tools.push({ command: "debootstrap", install: "apt-get install -y debootstrap" });
      problems.push(...(await missingTools(tools)));
      return problems;
    },

    async resolveSource(ctx, opts) {
      const source = await rootfsSource(ctx, opts.source, store, "unshare");
      if (!source) throw new KilnError("E_CONFIG", `image "${ctx.image}" has an unknown source`);
      return source;
    },

    launch: (ctx, source) => start(ctx, sourceTarball(source), "build"),

    async capture(ctx, machine, target) {
      if (!(machine instanceof UnshareMachine))
        throw new KilnError("E_CAPTURE", `machine ${machine.id} was not launched by the unshare driver`);
      const work = await mkdtemp(join(tmpdir(), `kiln-${ctx.runId}-capture-`));
      try {
        // Archived from the host, where nothing is mounted in the tree (/proc is mounted in the machine's mount namespace only).
        const archive = ["--numeric-owner", "--one-file-system", "-C", machine.root, "-cf", join(work, "rootfs.tar"), "."];
        await run("tar", archive, { timeoutMs: TAR_TIMEOUT_MS, signal: ctx.signal, code: "E_CAPTURE" });
        const artifact = await store.add({
          image: ctx.image,
          labels: target.labels,
          files: [{ from: join(work, "rootfs.tar"), format: "tar" }],
        });
        ctx.defer(() => store.remove(artifact.id), {
          when: "failure",
          resource: `unshare artefact ${artifact.id}`,
          manualCommand: `rm -rf ${join(store.dir, artifact.id)}`,
        });
        return artifact;
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    },

    async launchArtifact(ctx, artifact, runtime) {
      const tarball = (await storedTarball(store, artifact, "unshare", "E_LAUNCH")).path;
      const machine = await start(ctx, tarball, "verify", runtime.env ?? {});
      for (const [path, file] of Object.entries(runtime.files ?? {}))
        await machine.upload(Readable.from([Buffer.from(file.content)]), path, { mode: file.mode ?? 0o644 });
      if (runtime.bootScript) await machine.runBootScript(runtime.bootScript, ctx.signal);
      return machine;
    },

    findArtifacts: (query) => store.find(query),
    tag: (artifact, tag) => store.tag(artifact.id, tag),
    remove: (artifact) => store.remove(artifact.id),
  };
});

export default unshare;

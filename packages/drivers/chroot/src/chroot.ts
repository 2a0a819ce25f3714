import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { z } from "@kiln/core";
import { type BakeContext, defineDriver, KilnError, type PreflightProblem } from "@kiln/core";
import { artifactStore, missingTools } from "@kiln/core/kit";
import { debootstrapRecipeSchema, findRootfs, rootfsSource, sourceTarball, storedTarball } from "@kiln/debootstrap";
import { ChrootMachine, run } from "./machine.js";

export const chrootOptionsSchema = z.strictObject({
  source: z
    .union([
      z.strictObject({
        debootstrap: debootstrapRecipeSchema.describe(
          "A Debian tree built on this host with debootstrap, cached by recipe: { suite, variant, include, components, mirror }.",
        ),
      }),
      z.strictObject({ tarball: z.string().min(1).describe("A root file system tarball to unpack, relative to the bake file.") }),
    ])
    .optional()
    .describe("{ debootstrap: { suite } } to build a Debian tree, or { tarball: ./rootfs.tar } (relative to the bake file)."),
});

/** Options of the `chroot` driver. */
export type ChrootOptions = z.infer<typeof chrootOptionsSchema>;

/** Where machines' trees live while they run: transient, one directory per machine named after its run. */
export const MACHINES_DIR = join(tmpdir(), "kiln-chroot");

/**
 * Bakes root file system tarballs in a chroot on this host: the tree is unpacked, /proc and /sys are mounted, provisioners
 * run through `chroot`, and the tree is captured as a tarball into a local artefact store (its labels, tags, size and
 * checksum in a sidecar record). Needs root. A base for LXC, a VM image or a container, and the quickest driver to run.
 */
export const chroot = defineDriver<ChrootOptions>((init) => {
  const store = artifactStore({ dir: join(init.stateDir, "artifacts"), driver: "chroot" });

  /** Unpacks `tarball` into a new machine directory, registered for removal before anything exists. */
  async function start(
    ctx: BakeContext,
    tarball: string,
    role: "build" | "verify",
    setup: Partial<ConstructorParameters<typeof ChrootMachine>[0]> = {},
  ) {
    const name = `kiln-${ctx.runId}-${ctx.image.replace(/[^A-Za-z0-9_.-]/g, "-")}-${role}-${randomBytes(2).toString("hex")}`;
    const machine = new ChrootMachine({ name, dir: join(MACHINES_DIR, name), ...setup });
    ctx.defer(() => machine[Symbol.asyncDispose](), {
      resource: `chroot ${machine.dir}`,
      manualCommand: `umount -l ${machine.root}/proc ${machine.root}/sys; rm -rf ${machine.dir}`,
    });
    await mkdir(machine.root, { recursive: true });
    await run("tar", ["--numeric-owner", "-xpf", tarball, "-C", machine.root]);
    await machine.start();
    return machine;
  }

  return {
    name: "chroot",
    schema: chrootOptionsSchema,
    // A chroot shares the host's network: a port a verify check asks for is on 127.0.0.1.
    runtimeSupport: { bootScript: true, hostPorts: true },
    connectionKinds: ["chroot"],
    hostPaths: (opts) =>
      opts.source && "tarball" in opts.source ? [{ path: ["source", "tarball"], value: opts.source.tarball, access: "read" }] : [],

    async preflight(opts) {
      const problems: PreflightProblem[] = [];
      if (process.getuid?.() !== 0)
        problems.push({
          message: "the chroot driver needs root (it mounts /proc and enters the tree with chroot)",
          hint: "run kiln as root",
        });
      const tools = [
        { command: "chroot", install: "apt-get install -y coreutils" },
        { command: "tar", install: "apt-get install -y tar" },
        { command: "mount", install: "apt-get install -y mount" },
      ];
      const recipe = opts.source && "debootstrap" in opts.source ? opts.source.debootstrap : undefined;
      // debootstrap is only needed when the tree is not built yet; finding out reads the host's apt sources, nothing more.
      if (recipe && !(await findRootfs(recipe).catch(() => undefined)))
        tools.push({ command: "debootstrap", install: "apt-get install -y debootstrap" });
      problems.push(...(await missingTools(tools)));
      return problems;
    },

    async resolveSource(ctx, opts) {
      const source = await rootfsSource(ctx, opts.source, store, "chroot");
      if (!source) throw new KilnError("E_CONFIG", `image "${ctx.image}" has an unknown source`);
      return source;
    },

    launch: (ctx, source) => start(ctx, sourceTarball(source), "build"),

    async capture(ctx, machine, target) {
      if (!(machine instanceof ChrootMachine))
        throw new KilnError("E_CAPTURE", `machine ${machine.id} was not launched by the chroot driver`);
      await machine.restoreResolver();
      const work = await mkdtemp(join(tmpdir(), `kiln-${ctx.runId}-capture-`));
      try {
        // --one-file-system leaves out what is mounted inside (/proc, /sys): only the tree itself is the image.
        await run("tar", ["--numeric-owner", "--one-file-system", "-C", machine.root, "-cf", join(work, "rootfs.tar"), "."]);
        const artifact = await store.add({
          image: ctx.image,
          labels: target.labels,
          files: [{ from: join(work, "rootfs.tar"), format: "tar" }],
        });
        ctx.defer(() => store.remove(artifact.id), {
          when: "failure",
          resource: `chroot artefact ${artifact.id}`,
          manualCommand: `rm -rf ${join(store.dir, artifact.id)}`,
        });
        return artifact;
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    },

    async launchArtifact(ctx, artifact, runtime) {
      const tarball = (await storedTarball(store, artifact, "chroot", "E_LAUNCH")).path;
      const machine = await start(ctx, tarball, "verify", { env: runtime.env ?? {}, ports: runtime.ports ?? [] });
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

export default chroot;

import { randomBytes } from "node:crypto";
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { connectSsh } from "@kiln/communicator-ssh";
import {
  type Artifact,
  type BakeContext,
  defineDriver,
  KilnError,
  parseDuration,
  type PreflightProblem,
  type RuntimeInputs,
  type SourceRef,
} from "@kiln/core";
import { artifactStore, missingTools, runHost } from "@kiln/core/kit";
import { resolveRecipe, sha256File } from "@kiln/debootstrap";
import { buildBaseBox, findBaseBox } from "./base-box.js";
import { compareVersions, writeCatalogs } from "./catalog.js";
import { createPool, domainDisk, domainState, kvmUsable, libvirtProblems } from "./libvirt.js";
import { destroyVm, domainId, VagrantMachine, type VagrantVm } from "./machine.js";
import { type VagrantOptions, vagrantOptionsSchema } from "./options.js";
import { boxDirName, sshConfig, vagrant, vagrantHome, vagrantUp } from "./vagrant.js";

const TOOLS = [
  { command: "vagrant", install: "apt-get install -y vagrant vagrant-libvirt" },
  { command: "virsh", install: "apt-get install -y libvirt-clients libvirt-daemon-system" },
  { command: "qemu-img", install: "apt-get install -y qemu-utils" },
  { command: "qemu-system-x86_64", install: "apt-get install -y qemu-system-x86" },
];

/** The box a VM starts from: a `.box` file added for the bake, or a box installed in Vagrant. */
type BoxRef = { file: string } | { name: string; version?: string };

/**
 * Bakes Vagrant boxes for the libvirt provider with the real `vagrant` and `vagrant-libvirt`: each VM gets a Kiln-owned
 * project directory with a generated Vagrantfile and a storage pool of its own, comes up with `vagrant up`, is provisioned over
 * SSH (from `vagrant ssh-config`), and is captured the libvirt way — shut down, its disk flattened with `qemu-img convert` —
 * into a `.box` in a local artefact store, with `box.json` catalogs for the tags. The base box can be built from scratch.
 */
export const vagrantDriver = defineDriver<VagrantOptions>((init) => {
  const store = artifactStore({ dir: join(init.stateDir, "artifacts"), driver: "vagrant" });
  const catalogDir = join(init.stateDir, "catalog");
  const baseBoxes = join(init.cacheDir, "base-boxes");
  let emulationSaid = false;

  async function libvirtDriver(ctx: BakeContext, opts: VagrantOptions): Promise<"kvm" | "qemu"> {
    if (opts.libvirt_driver !== "auto") return opts.libvirt_driver;
    if (await kvmUsable()) return "kvm";
    if (!emulationSaid)
      ctx.log.warn(
        "vagrant: KVM cannot run guests here (no /dev/kvm, or no vmx/svm CPU flag): using QEMU's software emulation, which is slower",
      );
    emulationSaid = true;
    return "qemu";
  }

  /** Brings a VM up from `box` in a project and pool of its own, registered for removal before anything exists. */
  async function start(ctx: BakeContext, box: BoxRef, role: "build" | "verify", opts: VagrantOptions, runtime: RuntimeInputs = {}) {
    const safeImage = ctx.image.toLowerCase().replace(/[^a-z0-9-]/g, "-");
    const name = `kiln-${ctx.runId}-${safeImage}-${role}-${randomBytes(2).toString("hex")}`;
    const vm: VagrantVm = { name, project: join(tmpdir(), name), uri: opts.uri, ...("file" in box ? { addedBox: name } : {}) };
    ctx.defer(() => destroyVm(vm), {
      resource: `Vagrant VM ${name}`,
      manualCommand: `cd ${vm.project} && vagrant destroy -f; virsh pool-destroy ${name}; virsh pool-undefine ${name}; rm -rf ${vm.project}`,
    });
    await mkdir(join(vm.project, "pool"), { recursive: true, mode: 0o711 });
    await createPool(opts.uri, name, join(vm.project, "pool"));
    const onLine = (line: string) => ctx.log.info(`vagrant: ${line.trim()}`);
    const run = { cwd: vm.project, signal: ctx.signal, onLine };
    if ("file" in box) await vagrant(["box", "add", "--name", name, box.file], { ...run, onLine: () => {} });
    const installed = "file" in box ? { name, version: "0" } : { name: box.name, version: box.version ?? (await newestVersion(box.name)) };
    const boxDir = join(vagrantHome(), "boxes", boxDirName(installed.name), installed.version, "libvirt");
    vm.boxDir = boxDir;
    const kernel = await kernelBeside(boxDir, vm.project);
    await writeFile(join(vm.project, "Vagrantfile"), projectVagrantfile(name, installed, opts, await libvirtDriver(ctx, opts), kernel));
    ctx.log.info(`vagrant: bringing up ${name} (${"file" in box ? "box file" : `box ${box.name}`})`);
    await vagrantUp(run);
    const login = await sshConfig(vm.project, ctx.signal);
    const ssh = await connectSsh({
      host: login.host,
      port: login.port,
      user: login.user,
      privateKey: await readFile(login.identityFile, "utf8"),
      transferAs: "root",
      deadlineMs: 120_000,
      signal: ctx.signal,
    });
    const machine = new VagrantMachine(ssh, vm, runtime.env ?? {});
    ctx.defer(() => machine.disconnect(), { resource: `SSH connection to ${name}` });
    for (const [path, file] of Object.entries(runtime.files ?? {}))
      await machine.upload(Readable.from([file.content]), path, { mode: file.mode ?? 0o644 });
    return machine;
  }

  return {
    name: "vagrant",
    schema: vagrantOptionsSchema,
    // A VM has its own address on vagrant-libvirt's management network: a port it listens on is reached there.
    runtimeSupport: { hostPorts: true },
    connectionKinds: ["ssh"],
    hostPaths: (opts) =>
      opts.source && "box_file" in opts.source ? [{ path: ["source", "box_file"], value: opts.source.box_file, access: "read" }] : [],

    async preflight(opts) {
      const problems: PreflightProblem[] = [...(await missingTools(TOOLS))];
      if (problems.length > 0) return problems;
      const plugins = await runHost("vagrant", ["plugin", "list"]).catch(() => "");
      if (!plugins.includes("vagrant-libvirt"))
        problems.push({ message: "the vagrant-libvirt plugin is not installed", hint: "apt-get install -y vagrant-libvirt" });
      problems.push(...(await libvirtProblems(opts.uri)));
      if (opts.libvirt_driver === "kvm" && !(await kvmUsable()))
        problems.push({
          message: "KVM cannot run guests on this host (no /dev/kvm, or no vmx/svm CPU flag)",
          hint: "use libvirt_driver: qemu (software emulation) or auto",
          path: ["libvirt_driver"],
        });
      const source = opts.source;
      if (source && "debootstrap" in source && !(await findBaseBox(source.debootstrap, baseBoxes)))
        problems.push(...(await missingTools([{ command: "debootstrap", install: "apt-get install -y debootstrap" }])));
      if (source && "box" in source && !(await newestVersion(source.box.name).catch(() => undefined)))
        problems.push({
          message: `the box ${source.box.name} is not installed in ${vagrantHome()}`,
          hint: `vagrant box add ${source.box.name} (a .box file or a box.json catalog) — no box can be downloaded without a network`,
          path: ["source", "box"],
        });
      return problems;
    },

    async resolveSource(ctx, opts) {
      if (ctx.parent) {
        const file = await boxFile(ctx.parent, "E_SOURCE");
        return {
          id: ctx.parent.id,
          digest: file.sha256,
          description: `${ctx.parent.image} (${ctx.parent.id})`,
          details: { box: file.path },
        };
      }
      const source = opts.source;
      if (!source)
        throw new KilnError("E_CONFIG", `image "${ctx.image}" has no source`, { hint: "set source: { debootstrap: { suite: bookworm } }" });
      if ("box_file" in source) {
        const file = await ctx.hostPath(source.box_file, "read");
        return { id: `box-file:${file}`, digest: await sha256File(file), description: source.box_file, details: { box: file } };
      }
      if ("box" in source) {
        const version = source.box.version ?? (await newestVersion(source.box.name));
        const disk = await stat(join(vagrantHome(), "boxes", boxDirName(source.box.name), version, "libvirt", "box.img")).catch(() => {
          throw new KilnError("E_SOURCE", `the box ${source.box.name} ${version} has no libvirt disk (box.img) in ${vagrantHome()}`);
        });
        return {
          id: `box:${source.box.name}@${version}`,
          digest: `${source.box.name}@${version}:${disk.size}:${disk.mtimeMs}`,
          description: `box ${source.box.name} ${version}`,
          details: { boxName: source.box.name, boxVersion: version },
        };
      }
      const found = await findBaseBox(source.debootstrap, baseBoxes);
      if (!found && ctx.planning)
        throw new KilnError("E_SOURCE", `the base box for debootstrap ${source.debootstrap.suite} is not built yet`);
      if (!found) ctx.log.info("vagrant: building the base box from scratch (debootstrap, a few minutes, once)");
      const base =
        found ??
        (await buildBaseBox(source.debootstrap, baseBoxes, { signal: ctx.signal, log: (line) => ctx.output("stdout", `${line}\n`) }));
      const built = (await stat(base.box)).mtime.toISOString();
      return {
        id: `debootstrap:${base.key}`,
        digest: `${base.key}@${built}`,
        description: `base box from debootstrap ${source.debootstrap.suite}`,
        details: { box: base.box, mirror: (await resolveRecipe(source.debootstrap)).mirror, built },
      };
    },

    launch: (ctx, source, opts) => start(ctx, boxOf(source), "build", opts),

    async capture(ctx, machine, target, opts) {
      if (!(machine instanceof VagrantMachine))
        throw new KilnError("E_CAPTURE", `machine ${machine.id} was not launched by the vagrant driver`);
      const work = await mkdtemp(join(tmpdir(), `kiln-${ctx.runId}-capture-`));
      try {
        const pieces = join(work, "box");
        await mkdir(pieces);
        const carried = await carryBoxFiles(machine, pieces);
        // Each VM of the new box makes its own identity: machine-id, and sshd's host key where the box regenerates it.
        await machine.exec(
          "truncate -s 0 /etc/machine-id; if [ -e /etc/systemd/system/ssh.service.d/kiln-host-key.conf ]; then rm -f /etc/ssh/ssh_host_*; fi; sync",
        );
        await shutDown(ctx, machine);
        const domain = await domainId(machine.vm);
        await runHost("qemu-img", ["convert", "-O", "qcow2", await domainDisk(opts.uri, domain), join(pieces, "box.img")], "E_CAPTURE");
        const info = JSON.parse(await runHost("qemu-img", ["info", "--output=json", join(pieces, "box.img")], "E_CAPTURE")) as {
          "virtual-size": number;
        };
        const metadata = { provider: "libvirt", format: "qcow2", virtual_size: Math.ceil(info["virtual-size"] / 2 ** 30) };
        await writeFile(join(pieces, "metadata.json"), `${JSON.stringify(metadata, null, 2)}\n`);
        // Provenance travels inside the box too: whoever adds it can read where it came from.
        await writeFile(join(pieces, "kiln.json"), `${JSON.stringify({ image: ctx.image, labels: target.labels }, null, 2)}\n`);
        const box = join(work, `${ctx.image.replace(/[^A-Za-z0-9_.-]/g, "-")}.box`);
        await runHost("tar", ["-C", pieces, "-cf", box, "metadata.json", "box.img", "kiln.json", ...carried], "E_CAPTURE");
        const artifact = await store.add({ image: ctx.image, labels: target.labels, files: [{ from: box, format: "box" }] });
        ctx.defer(() => store.remove(artifact.id), {
          when: "failure",
          resource: `Vagrant box ${artifact.id}`,
          manualCommand: `rm -rf ${join(store.dir, artifact.id)}`,
        });
        return artifact;
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    },

    async launchArtifact(ctx, artifact, runtime, opts) {
      return start(ctx, { file: (await boxFile(artifact, "E_LAUNCH")).path }, "verify", opts, runtime);
    },

    findArtifacts: (query) => store.find(query),
    async tag(artifact, tag) {
      await store.tag(artifact.id, tag);
      await writeCatalogs(store, catalogDir);
    },
    async remove(artifact) {
      await store.remove(artifact.id);
      await writeCatalogs(store, catalogDir);
    },
  };

  async function boxFile(artifact: Artifact, code: "E_SOURCE" | "E_LAUNCH") {
    const files = artifact.files?.length ? artifact.files : (await store.get(artifact.id))?.files;
    const file = files?.find((candidate) => candidate.format === "box");
    if (!file) throw new KilnError(code, `artefact ${artifact.id} of "${artifact.image}" is not in the Vagrant store ${store.dir}`);
    return file;
  }
});

function boxOf(source: SourceRef): BoxRef {
  const details = source.details ?? {};
  if (details.box) return { file: details.box };
  if (details.boxName) return { name: details.boxName, ...(details.boxVersion ? { version: details.boxVersion } : {}) };
  throw new KilnError("E_LAUNCH", `source ${source.description} names no box`);
}

/** The newest installed version of a box (for the libvirt provider), as `vagrant up` would pick it. */
async function newestVersion(name: string): Promise<string> {
  const dir = join(vagrantHome(), "boxes", boxDirName(name));
  const versions = [];
  for (const version of await readdir(dir).catch(() => [] as string[]))
    if (await stat(join(dir, version, "libvirt")).catch(() => undefined)) versions.push(version);
  const newest = versions.sort(compareVersions).at(-1);
  if (!newest)
    throw new KilnError("E_SOURCE", `the box ${name} is not installed for libvirt in ${vagrantHome()}`, {
      hint: `vagrant box add ${name}`,
    });
  return newest;
}

/**
 * A box that boots its kernel directly names it in Vagrant's home, which QEMU — running as libvirt's own user — cannot read
 * under a private home (/root is 0700): the kernel and initrd are copied into the VM's project, which it can.
 */
async function kernelBeside(boxDir: string, project: string): Promise<{ kernel: string; initrd: string } | undefined> {
  const names = await readdir(boxDir).catch(() => [] as string[]);
  if (!names.includes("vmlinuz") || !names.includes("initrd.img")) return undefined;
  await mkdir(join(project, "boot"));
  const kernel = { kernel: join(project, "boot", "vmlinuz"), initrd: join(project, "boot", "initrd.img") };
  await copyFile(join(boxDir, "vmlinuz"), kernel.kernel);
  await copyFile(join(boxDir, "initrd.img"), kernel.initrd);
  return kernel;
}

/** The project's Vagrantfile: the box, no synced folder, Vagrant's own key kept (as Packer does), a pool and names of the bake's. */
function projectVagrantfile(
  name: string,
  box: { name: string; version: string },
  opts: VagrantOptions,
  driver: "kvm" | "qemu",
  boot: { kernel: string; initrd: string } | undefined,
): string {
  return `# Written by Kiln for one VM of a bake; removed with it.
Vagrant.configure("2") do |config|
  config.vm.box = "${box.name}"
  config.vm.box_version = "${box.version}"
  config.vm.box_check_update = false
  config.vm.synced_folder ".", "/vagrant", disabled: true
  # The box keeps Vagrant's insecure key, so the box Kiln captures logs in like any base box.
  config.ssh.insert_key = false
  config.vm.boot_timeout = ${Math.ceil(parseDuration(opts.boot_timeout) / 1000)}
  config.vm.provider :libvirt do |libvirt|
    libvirt.uri = "${opts.uri}"
    libvirt.driver = "${driver}"
    libvirt.memory = ${opts.memory}
    libvirt.cpus = ${opts.cpus}
${opts.machine_type ? `    libvirt.machine_type = "${opts.machine_type}"\n` : ""}    libvirt.default_prefix = "${name}-"
    libvirt.storage_pool_name = "${name}"
    libvirt.graphics_type = "none"
${boot ? `    libvirt.kernel = "${boot.kernel}"\n    libvirt.initrd = "${boot.initrd}"\n` : ""}  end
end
`;
}

/**
 * Copies what the VM's box carried besides its disk (its Vagrantfile; a kernel and initrd for boxes that boot directly) into
 * the new box. A carried kernel is replaced by the VM's own, which provisioning may have upgraded. Returns the file names.
 */
async function carryBoxFiles(machine: VagrantMachine, pieces: string): Promise<string[]> {
  const boxDir = machine.vm.boxDir;
  const names = (await readdir(boxDir ?? "/nonexistent").catch(() => [] as string[])).filter(
    (name) => !/^(box(_\d+)?\.img|metadata\.json|kiln\.json)$/.test(name),
  );
  for (const name of names) {
    const inVm = { vmlinuz: "/vmlinuz", "initrd.img": "/initrd.img" }[name];
    if (inVm) {
      const path = (await machine.exec(`readlink -f ${inVm}`)).stdout.trim();
      if (path) {
        await machine.download(path, join(pieces, name));
        continue;
      }
    }
    await copyFile(join(boxDir as string, name), join(pieces, name));
  }
  return names;
}

/** Powers the VM off from inside (a clean shutdown: file systems synced and unmounted) and waits for libvirt to see it off. */
async function shutDown(ctx: BakeContext, machine: VagrantMachine): Promise<void> {
  await machine.exec("systemctl poweroff || poweroff", { timeout: 15_000 }).catch(() => undefined);
  await machine.disconnect();
  const domain = await domainId(machine.vm);
  const deadline = Date.now() + 180_000;
  let state = "";
  while (Date.now() < deadline) {
    ctx.signal.throwIfAborted();
    state = await domainState(machine.vm.uri, domain);
    if (state === "shut off") return;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  throw new KilnError("E_CAPTURE", `${machine.id} did not power off within 3 minutes (still ${state})`, {
    hint: "check that the image shuts down on systemctl poweroff",
  });
}

export default vagrantDriver;

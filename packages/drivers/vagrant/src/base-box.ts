import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { access, copyFile, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { KilnError } from "@kiln/core";
import { runHost, withFileLock } from "@kiln/core/kit";
import { buildRootfs, type DebootstrapRecipe, extractRootfs, resolveRecipe } from "@kiln/debootstrap";

/**
 * What a Vagrant base box needs besides the recipe's own packages: a kernel (Debian's cloud kernel, made for VMs: the box is
 * half the size and boots faster than with the generic one), an init, DHCP (ifupdown + dhclient, which also writes
 * /etc/resolv.conf; systemd-resolved fails to configure inside debootstrap), sshd, sudo.
 */
export const BASE_BOX_PACKAGES = ["linux-image-cloud-amd64", "systemd-sysv", "ifupdown", "isc-dhcp-client", "openssh-server", "sudo"];

/** Where Debian's and HashiCorp's Vagrant packages keep the well-known insecure key pair. */
const INSECURE_KEY_GLOBS = [
  "/usr/share/rubygems-integration/all/gems",
  "/opt/vagrant/embedded/gems/gems",
  "/opt/vagrant/embedded/gems/2.3.4/gems",
];

export interface BaseBox {
  /** The `.box` file (a tar with metadata.json, Vagrantfile, box.img, vmlinuz, initrd.img). */
  box: string;
  /** The unpacked pieces, for booting without Vagrant. */
  dir: string;
  /** 16 hex digits over the recipe (with the mirror) and the box layout: equal recipes share one box. */
  key: string;
}

/** The layout's version: bump it when the box's contents change, so cached boxes are rebuilt. */
const LAYOUT = "kiln-base-box-6";

/**
 * Builds a Vagrant base box for the libvirt provider from a debootstrap recipe, once per recipe (cached in `cacheDir`, under a
 * lock): the tree gets a `vagrant` user with Vagrant's insecure key (replaced at the first `vagrant up`, as usual) and
 * passwordless sudo, DHCP on eth0 (ifupdown, dhclient), sshd with host keys made at
 * first boot, and becomes an ext4 file system image (`mkfs.ext4 -d`: no loop device, no mount) converted to qcow2.
 *
 * Boot path: the kernel and initrd travel in the box and the box's Vagrantfile boots them directly (`libvirt.kernel`,
 * `initrd`, `cmd_line root=/dev/vda`): no partition table and no bootloader to install, which would need loop devices and
 * grub inside the tree.
 */
export async function buildBaseBox(
  recipe: DebootstrapRecipe,
  cacheDir: string,
  io: { signal?: AbortSignal; log?: (line: string) => void } = {},
): Promise<BaseBox> {
  const { box, resolved } = await baseBoxPlace(recipe, cacheDir);
  const built = () => exists(box.box);
  if (await built()) return box;
  const { dir } = box;
  return withFileLock(
    dir,
    async () => {
      if (await built()) return box;
      const rootfs = await buildRootfs(resolved, { ...(io.signal ? { signal: io.signal } : {}), onOutput: (line) => io.log?.(line) });
      const work = await mkdtemp(join(tmpdir(), "kiln-base-box-"));
      try {
        const tree = join(work, "tree");
        await extractRootfs(rootfs, tree);
        await configureTree(tree, await insecurePublicKey());
        const pieces = join(work, "box");
        await mkdir(pieces);
        await copyKernel(tree, pieces);
        await diskImage(tree, join(work, "root.raw"), join(pieces, "box.img"));
        const { "virtual-size": virtualSize } = JSON.parse(
          await runHost("qemu-img", ["info", "--output=json", join(pieces, "box.img")]),
        ) as {
          "virtual-size": number;
        };
        await writeFile(
          join(pieces, "metadata.json"),
          `${JSON.stringify({ provider: "libvirt", format: "qcow2", virtual_size: Math.ceil(virtualSize / 2 ** 30) }, null, 2)}\n`,
        );
        await writeFile(join(pieces, "Vagrantfile"), BOX_VAGRANTFILE);
        await runHost("tar", [
          "-C",
          pieces,
          "-cf",
          join(pieces, "kiln-base.box"),
          "metadata.json",
          "Vagrantfile",
          "box.img",
          "vmlinuz",
          "initrd.img",
        ]);
        await rm(dir, { recursive: true, force: true });
        await mkdir(cacheDir, { recursive: true });
        await rename(pieces, dir);
        return box;
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    },
    { ...(io.signal ? { signal: io.signal } : {}) },
  );
}

/** Where the base box of a recipe lives in the cache (built or not). */
async function baseBoxPlace(recipe: DebootstrapRecipe, cacheDir: string) {
  const wanted = { ...recipe, include: [...new Set([...(recipe.include ?? []), ...BASE_BOX_PACKAGES])] };
  const resolved = await resolveRecipe(wanted);
  const key = createHash("sha256").update(`${LAYOUT}\0${resolved.key}`).digest("hex").slice(0, 16);
  const dir = join(cacheDir, key);
  const box: BaseBox = { box: join(dir, "kiln-base.box"), dir, key };
  return { box, resolved };
}

/** The recipe's base box when it is built already (for planning, which builds nothing). */
export async function findBaseBox(recipe: DebootstrapRecipe, cacheDir: string): Promise<BaseBox | undefined> {
  const { box } = await baseBoxPlace(recipe, cacheDir);
  return (await exists(box.box)) ? box : undefined;
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

/** The box's own Vagrantfile: boots the kernel it carries, on the serial console, with the root file system on the disk. */
const BOX_VAGRANTFILE = `# Written by Kiln: the box boots its own kernel and initrd directly (no bootloader on the disk).
Vagrant.configure("2") do |config|
  # Said, not detected: Vagrant's detection runs some 25 commands over SSH after every boot.
  config.vm.guest = :debian
  config.vm.provider :libvirt do |libvirt|
    libvirt.kernel = File.expand_path("vmlinuz", __dir__)
    libvirt.initrd = File.expand_path("initrd.img", __dir__)
    # no_timer_check: under software emulation on a busy host the kernel's boot-time timer check can miss its ticks and panic.
    libvirt.cmd_line = "root=/dev/vda rw console=ttyS0 net.ifnames=0 no_timer_check quiet"
  end
end
`;

/**
 * Files that make the box boot fast under software emulation, where a VM often runs (KVM is not always usable): one ed25519
 * host key made before sshd first starts (an RSA key takes half a minute to generate there), a small initrd holding only
 * what finds the root disk on a libvirt machine (the default one holds every driver: 36 MB to unpack at each boot), and
 * DHCP on eth0 started when the device appears.
 */
const BOOT_FILES: Record<string, string> = {
  "etc/ssh/sshd_config.d/kiln-host-key.conf": "HostKey /etc/ssh/ssh_host_ed25519_key\n",
  "etc/systemd/system/ssh.service.d/kiln-host-key.conf": [
    "[Service]",
    "ExecStartPre=",
    "ExecStartPre=/bin/sh -c 'test -s /etc/ssh/ssh_host_ed25519_key || ssh-keygen -q -t ed25519 -N \"\" -f /etc/ssh/ssh_host_ed25519_key'",
    "ExecStartPre=/usr/sbin/sshd -t",
    "",
  ].join("\n"),
  "etc/initramfs-tools/conf.d/kiln-vm.conf": "MODULES=list\n",
  // eth0 is brought up by udev when it appears (allow-hotplug), so boot need not wait for every device to settle first (9 s).
  "etc/systemd/system/ifupdown-pre.service.d/kiln-no-settle.conf": "[Service]\nExecStart=\nExecStart=/bin/true\n",
  "etc/initramfs-tools/modules": "virtio_pci\nvirtio_blk\nvirtio_net\next4\n",
};

/** Turns a debootstrap tree into a base box's system, inside the tree (`chroot`). */
async function configureTree(tree: string, publicKey: string): Promise<void> {
  for (const [path, content] of Object.entries(BOOT_FILES)) {
    await mkdir(dirname(join(tree, path)), { recursive: true });
    await writeFile(join(tree, path), content);
  }
  const script = `set -e
useradd --create-home --shell /bin/bash --user-group vagrant
echo 'vagrant:vagrant' | chpasswd
echo 'vagrant ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/vagrant
chmod 0440 /etc/sudoers.d/vagrant
install -d -m 0700 -o vagrant -g vagrant /home/vagrant/.ssh
printf '%s\\n' "$KILN_PUBLIC_KEY" > /home/vagrant/.ssh/authorized_keys
chown vagrant:vagrant /home/vagrant/.ssh/authorized_keys
chmod 0600 /home/vagrant/.ssh/authorized_keys
# net.ifnames=0 on the kernel command line: the first interface is eth0, whatever the machine type.
printf 'auto lo\\niface lo inet loopback\\n\\nallow-hotplug eth0\\niface eth0 inet dhcp\\n' > /etc/network/interfaces
systemctl enable networking ssh
# Host keys are made at first boot (BOOT_FILES): none may be shared by every VM of the box.
rm -f /etc/ssh/ssh_host_*
update-initramfs -u -k all >/dev/null
systemctl mask e2scrub_reap.service
printf '/dev/vda / ext4 defaults,errors=remount-ro 0 1\\n' > /etc/fstab
echo kiln-box > /etc/hostname
printf '127.0.0.1 localhost\\n127.0.1.1 kiln-box\\n' > /etc/hosts
apt-get clean
rm -rf /var/lib/apt/lists/*
`;
  await new Promise<void>((resolve, reject) => {
    // The key travels in the environment; the script is the same for every box.
    const child = spawn("chroot", [tree, "/bin/sh", "-c", script], {
      env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", KILN_PUBLIC_KEY: publicKey },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0
        ? resolve()
        : reject(new KilnError("E_SOURCE", `configuring the base box failed: ${stderr.trim().split("\n").slice(-5).join("\n")}`)),
    );
  });
}

/** The kernel and initrd the tree's linux-image package installed, copied next to the disk image. */
async function copyKernel(tree: string, pieces: string): Promise<void> {
  const boot = await readdir(join(tree, "boot"));
  const kernel = boot
    .filter((name) => name.startsWith("vmlinuz-"))
    .sort()
    .at(-1);
  const initrd = kernel && boot.find((name) => name === `initrd.img-${kernel.slice("vmlinuz-".length)}`);
  if (!kernel || !initrd)
    throw new KilnError("E_SOURCE", "the base box's tree has no kernel and initrd in /boot", {
      hint: "include linux-image-amd64 in the recipe",
    });
  await copyFile(join(tree, "boot", kernel), join(pieces, "vmlinuz"));
  await copyFile(join(tree, "boot", initrd), join(pieces, "initrd.img"));
}

/** An ext4 image of the tree (with room to grow), converted to qcow2. */
async function diskImage(tree: string, raw: string, qcow2: string): Promise<void> {
  const used = Number((await runHost("du", ["-sb", tree])).split(/\s/)[0]);
  const size = Math.ceil((used * 1.3 + 2 * 2 ** 30) / 2 ** 30);
  await runHost("truncate", ["-s", `${size}G`, raw], "E_LAUNCH");
  await runHost("mkfs.ext4", ["-q", "-F", "-L", "kiln-root", "-d", tree, raw], "E_LAUNCH");
  await runHost("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", raw, qcow2], "E_LAUNCH");
  await rm(raw, { force: true });
  if ((await stat(qcow2)).size === 0) throw new KilnError("E_SOURCE", "the base box's disk image is empty");
}

/** Vagrant's well-known insecure public key, from the installed vagrant package: a base box must accept it. */
export async function insecurePublicKey(): Promise<string> {
  for (const root of INSECURE_KEY_GLOBS) {
    const gems = await readdir(root).catch(() => [] as string[]);
    for (const gem of gems
      .filter((name) => /^vagrant-\d/.test(name))
      .sort()
      .reverse()) {
      const key = await readFile(join(root, gem, "keys", "vagrant.pub"), "utf8").catch(() => undefined);
      if (key) return key.trim();
    }
  }
  throw new KilnError("E_MISSING_TOOL", "Vagrant's insecure key was not found (is vagrant installed?)", {
    hint: "apt-get install -y vagrant",
  });
}

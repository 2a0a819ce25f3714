import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectSsh } from "@kiln/communicator-ssh";
import { findExecutable, runHost } from "@kiln/core/kit";
import { type BaseBox, buildBaseBox } from "../src/index.js";
import { freePort } from "@kiln/test-suite";

// The box is cached by recipe like every debootstrap base: built once per machine (a few minutes), reused after.
const CACHE = join(process.env.KILN_CACHE_DIR ?? join(homedir(), ".cache", "kiln"), "driver-vagrant", "base-boxes");
const INSECURE_PRIVATE_KEY = "/usr/share/rubygems-integration/all/gems/vagrant-2.3.4/keys/vagrant";
let box: BaseBox;
let work: string;

beforeAll(async () => {
  for (const tool of ["qemu-system-x86_64", "qemu-img", "mkfs.ext4", "debootstrap"])
    if (!(await findExecutable(tool)))
      throw new Error(`${tool} not found: apt-get install -y qemu-system-x86 qemu-utils e2fsprogs debootstrap`);
  box = await buildBaseBox({ suite: "bookworm", variant: "minbase", include: ["python3"] }, CACHE);
  work = await mkdtemp(join(tmpdir(), "kiln-base-box-test-"));
}, 1_200_000);
afterAll(() => rm(work, { recursive: true, force: true }));

/**
 * Boots the box the way its Vagrantfile tells libvirt to — the kernel and initrd it carries, root on the virtio disk — under
 * QEMU's software emulation (KVM cannot boot guests here), with SSH forwarded to a loopback port. The disk is a snapshot.
 */
function boot(port: number): ChildProcess {
  const args = [
    ...["-accel", "tcg", "-m", "1024", "-smp", "2", "-display", "none", "-monitor", "none", "-no-reboot"],
    ...["-serial", `file:${join(work, "console.log")}`],
    ...["-kernel", join(box.dir, "vmlinuz"), "-initrd", join(box.dir, "initrd.img")],
    // The box's own command line (its Vagrantfile), without "quiet" so a failed boot shows why.
    ...["-append", "root=/dev/vda rw console=ttyS0 net.ifnames=0 no_timer_check"],
    ...["-drive", `file=${join(box.dir, "box.img")},if=virtio,format=qcow2,snapshot=on`],
    ...["-netdev", `user,id=n0,hostfwd=tcp:127.0.0.1:${port}-:22`, "-device", "virtio-net-pci,netdev=n0"],
  ];
  return spawn("qemu-system-x86_64", args, { stdio: "ignore" });
}

describe("a Vagrant base box built from scratch (debootstrap)", () => {
  it("is a libvirt box: metadata.json, a Vagrantfile that boots its own kernel, a qcow2 disk", async () => {
    const listing = (await runHost("tar", ["-tf", box.box])).split("\n").filter(Boolean).sort();
    expect(listing).toEqual(["Vagrantfile", "box.img", "initrd.img", "metadata.json", "vmlinuz"]);
    expect(JSON.parse(await readFile(join(box.dir, "metadata.json"), "utf8"))).toMatchObject({ provider: "libvirt", format: "qcow2" });
    expect(await readFile(join(box.dir, "Vagrantfile"), "utf8")).toMatch(/libvirt\.kernel = File\.expand_path\("vmlinuz", __dir__\)/);
    expect(JSON.parse(await runHost("qemu-img", ["info", "--output=json", join(box.dir, "box.img")]))).toMatchObject({ format: "qcow2" });
  });

  it("boots under software emulation; Vagrant's insecure key logs in as vagrant, who becomes root with sudo", async () => {
    const port = await freePort();
    const vm = boot(port);
    try {
      const privateKey = await readFile(INSECURE_PRIVATE_KEY, "utf8");
      await using machine = await connectSsh({ host: "127.0.0.1", port, user: "vagrant", privateKey, deadlineMs: 300_000 });
      expect((await machine.exec("id -un")).stdout).toBe("vagrant\n");
      expect((await machine.exec("id -u", { user: "root" })).stdout).toBe("0\n");
      expect((await machine.exec("cat /proc/1/comm")).stdout).toBe("systemd\n");
      // As root: without dbus in the box, systemctl reaches systemd only through its private socket.
      const state = (await machine.exec("systemctl is-system-running --wait", { user: "root" })).stdout.trim();
      expect(["running", "degraded"]).toContain(state);
      // DHCP configured eth0 and the resolver; sshd made host keys of its own at first boot.
      expect((await machine.exec("cat /etc/resolv.conf")).stdout).toMatch(/^nameserver /m);
      expect((await machine.exec("ls /etc/ssh/ssh_host_ed25519_key.pub")).exitCode).toBe(0);
    } catch (error) {
      const console = await readFile(join(work, "console.log"), "utf8").catch(() => "");
      throw new Error(`${(error as Error).message}\nlast console lines:\n${console.split("\n").slice(-30).join("\n")}`);
    } finally {
      vm.kill("SIGKILL");
    }
  });
});

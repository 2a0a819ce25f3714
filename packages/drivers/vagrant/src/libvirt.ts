import { access, constants, readFile } from "node:fs/promises";
import { KilnError, type PreflightProblem } from "@kiln/core";
import { runHost } from "@kiln/core/kit";

/** How to start libvirt's daemons where no init system does. */
export const START_LIBVIRT = "virtlogd -d; libvirtd -d (or: systemctl start libvirtd)";

const virsh = (uri: string, args: string[], code: "E_LAUNCH" | "E_CAPTURE" | "E_CLEANUP" = "E_LAUNCH") =>
  runHost("virsh", ["-c", uri, "-q", ...args], code);

/** What stops vagrant-libvirt from reaching libvirt at `uri`. */
export async function libvirtProblems(uri: string): Promise<PreflightProblem[]> {
  const answered = await virsh(uri, ["list", "--all"]).then(
    () => undefined,
    (error: Error) => error.message,
  );
  if (answered === undefined) return [];
  return [{ message: `libvirt does not answer at ${uri}: ${answered.split("\n")[0]}`, hint: `start it: ${START_LIBVIRT}` }];
}

/**
 * Whether KVM can run guests: /dev/kvm must open and the CPU must offer vmx or svm. Some hosts (nested, or a paravirtual
 * kvm module) give a /dev/kvm whose guests never boot; those flags are missing there.
 */
export async function kvmUsable(): Promise<boolean> {
  const device = await access("/dev/kvm", constants.R_OK | constants.W_OK).then(
    () => true,
    () => false,
  );
  if (!device) return false;
  const cpuinfo = await readFile("/proc/cpuinfo", "utf8").catch(() => "");
  return /^flags\s*:.*\b(vmx|svm)\b/m.test(cpuinfo);
}

/** A directory storage pool of the bake's own: the box's volume and the VM's disk live there, and go with it. */
export async function createPool(uri: string, name: string, dir: string): Promise<void> {
  await virsh(uri, ["pool-define-as", name, "dir", "--target", dir]);
  await virsh(uri, ["pool-start", name]);
}

/** Removes a pool made by `createPool` from libvirt; its volumes are files in its directory, which the caller removes. */
export async function removePool(uri: string, name: string): Promise<void> {
  const pools = (await virsh(uri, ["pool-list", "--all", "--name"], "E_CLEANUP")).split("\n").map((line) => line.trim());
  if (!pools.includes(name)) return;
  await virsh(uri, ["pool-destroy", name], "E_CLEANUP").catch(() => undefined);
  await virsh(uri, ["pool-undefine", name], "E_CLEANUP");
}

/** Domains and pools whose names start with `prefix` (Kiln names them after the run). */
export async function libvirtResources(uri: string, prefix: string): Promise<{ domains: string[]; pools: string[] }> {
  const names = async (args: string[]) =>
    (await virsh(uri, args).catch(() => ""))
      .split("\n")
      .map((line) => line.trim())
      .filter((name) => name.startsWith(prefix));
  return { domains: await names(["list", "--all", "--name"]), pools: await names(["pool-list", "--all", "--name"]) };
}

/** Forcibly removes a domain (stopped first), for cleanups that `vagrant destroy` could not do. */
export async function removeDomain(uri: string, domain: string): Promise<void> {
  await virsh(uri, ["destroy", domain], "E_CLEANUP").catch(() => undefined);
  await virsh(uri, ["undefine", domain, "--nvram"], "E_CLEANUP").catch(() => virsh(uri, ["undefine", domain], "E_CLEANUP"));
}

/** `running`, `shut off`, … */
export async function domainState(uri: string, domain: string): Promise<string> {
  return (await virsh(uri, ["domstate", domain], "E_CAPTURE")).trim();
}

/** The file behind the domain's first disk (vda): the VM's own overlay on the box's volume. */
export async function domainDisk(uri: string, domain: string): Promise<string> {
  const listing = await virsh(uri, ["domblklist", domain, "--details"], "E_CAPTURE");
  for (const line of listing.split("\n")) {
    const [type, device, , source] = line.trim().split(/\s+/);
    if (type === "file" && device === "disk" && source) return source;
  }
  throw new KilnError("E_CAPTURE", `domain ${domain} has no disk file`, { hint: `virsh domblklist ${domain} --details` });
}

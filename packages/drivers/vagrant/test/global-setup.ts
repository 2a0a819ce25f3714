import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";

/**
 * libvirtd and virtlogd are started by nothing on a machine without an init system: start them (scripts/start-libvirt.sh does
 * nothing when libvirtd answers). Vagrant's boxes go to a home of the tests' own, removed afterwards, never a person's.
 */
export default async function setup(): Promise<() => Promise<void>> {
  await promisify(execFile)("bash", [resolve(import.meta.dirname, "../../../../scripts/start-libvirt.sh")]).catch((error: Error) => {
    throw new Error(`libvirt cannot be started (${error.message}): apt-get install -y libvirt-daemon-system vagrant-libvirt`);
  });
  const home = await mkdtemp(join(tmpdir(), "kiln-vagrant-home-"));
  process.env.VAGRANT_HOME = home;
  return () => rm(home, { recursive: true, force: true });
}

import { mkdir, writeFile } from "node:fs/promises";
import { arch } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { runHost } from "@kiln/core/kit";

/** LXD and Incus name architectures as the kernel does. */
const ARCHITECTURES: Record<string, string> = { x64: "x86_64", arm64: "aarch64", arm: "armv7l", ppc64: "ppc64le", s390x: "s390x" };

/**
 * The metadata half of an LXD/Incus "split" image (the other half is the rootfs tarball): `metadata.yaml` with the
 * architecture, creation date and properties — Kiln's provenance labels among them — and a template that names the instance
 * in /etc/hostname when it is created or copied. `incus image import metadata.tar rootfs.tar` (or `lxc image import`) takes it.
 */
export async function writeImageMetadata(work: string, image: string, labels: Record<string, string>): Promise<string> {
  const dir = join(work, "metadata");
  await mkdir(join(dir, "templates"), { recursive: true });
  const metadata = {
    architecture: ARCHITECTURES[arch()] ?? arch(),
    creation_date: Math.floor(Date.now() / 1000),
    properties: { description: `${image}, baked by Kiln`, name: image, ...labels },
    templates: { "/etc/hostname": { when: ["create", "copy"], template: "hostname.tpl" } },
  };
  await writeFile(join(dir, "metadata.yaml"), stringify(metadata));
  await writeFile(join(dir, "templates", "hostname.tpl"), "{{ container.name }}\n");
  const tarball = join(work, "metadata.tar");
  await runHost("tar", ["--numeric-owner", "--owner=0", "--group=0", "-C", dir, "-cf", tarball, "metadata.yaml", "templates"], "E_CAPTURE");
  return tarball;
}

import { readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { libvirtResources } from "./libvirt.js";
import { vagrantHome } from "./vagrant.js";

/** What a bake of this run id left behind: libvirt domains and pools, boxes added to Vagrant, project directories. */
export async function listVagrantResources(runId: string, uri = "qemu:///system"): Promise<string[]> {
  const prefix = `kiln-${runId}`;
  const { domains, pools } = await libvirtResources(uri, prefix);
  const boxes = (await readdir(join(vagrantHome(), "boxes")).catch(() => [] as string[])).filter((name) => name.startsWith(prefix));
  const projects = (await readdir(tmpdir()).catch(() => [] as string[])).filter((name) => name.startsWith(prefix));
  return [
    ...domains.map((name) => `domain ${name}`),
    ...pools.map((name) => `pool ${name}`),
    ...boxes.map((name) => `box ${name}`),
    ...projects.map((name) => `project ${join(tmpdir(), name)}`),
  ];
}

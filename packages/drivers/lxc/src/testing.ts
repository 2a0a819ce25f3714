import { runHost } from "@kiln/core/kit";

/** LXC containers of this run id (their names carry it) in `lxcpath`: what a bake left behind. */
export async function listLxcResources(runId: string, lxcpath = "/var/lib/lxc"): Promise<string[]> {
  const names = (await runHost("lxc-ls", ["-P", lxcpath, "-1"]).catch(() => "")).split(/\s+/).filter(Boolean);
  return names.filter((name) => name.includes(runId)).map((name) => `container ${name}`);
}

import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { LABELS, pluginInit } from "@kiln/core";
import { MACHINES_DIR } from "./chroot.js";

/**
 * What a bake with this run id left on this host: machine trees (named after the run), mounts below them, and artefacts in
 * any chroot store under the state root (`$KILN_STATE_DIR`) whose record carries the run id.
 */
export async function listChrootResources(runId: string): Promise<string[]> {
  const machines = (await readdir(MACHINES_DIR).catch(() => [] as string[])).filter((name) => name.includes(runId));
  const mounts = (await readFile("/proc/self/mounts", "utf8"))
    .split("\n")
    .map((line) => line.split(" ")[1] ?? "")
    .filter((target) => target.includes(runId));
  const stateRoot = join(pluginInit("driver", "chroot", process.cwd(), { info() {}, warn() {}, debug() {} }).stateDir, "..");
  const artefacts: string[] = [];
  for (const plugin of await readdir(stateRoot).catch(() => [] as string[])) {
    const store = join(stateRoot, plugin, "artifacts");
    for (const id of await readdir(store).catch(() => [] as string[])) {
      const record = await readFile(join(store, id, "record.json"), "utf8").catch(() => undefined);
      if (record && (JSON.parse(record) as { labels: Record<string, string> }).labels[LABELS.build] === runId)
        artefacts.push(`artefact ${id}`);
    }
  }
  return [...machines.map((name) => `machine ${name}`), ...mounts.map((target) => `mount ${target}`), ...artefacts];
}

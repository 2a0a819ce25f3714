import { readdir, readFile, readlink } from "node:fs/promises";
import { join } from "node:path";
import { LABELS, pluginInit } from "@kiln/core";
import { MACHINES_DIR } from "../src/index.js";

/**
 * What a bake with this run id left on this host: machine trees (named after the run), holder processes (unshare and the
 * machine's PID 1 carry the name on their command line), any process still rooted in such a tree, and artefacts in any store
 * under the state root (`$KILN_STATE_DIR`) whose record carries the run id.
 */
export async function listUnshareResources(runId: string): Promise<string[]> {
  const machines = (await readdir(MACHINES_DIR).catch(() => [] as string[])).filter((name) => name.includes(runId));
  const processes: string[] = [];
  for (const pid of (await readdir("/proc")).filter((entry) => /^\d+$/.test(entry))) {
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).replaceAll("\0", " ").trim();
    const root = await readlink(`/proc/${pid}/root`).catch(() => "");
    if (cmdline.includes(runId) || (root.startsWith(`${MACHINES_DIR}/`) && root.includes(runId)))
      processes.push(`process ${pid} (${cmdline || "no command line"}, root ${root})`);
  }
  const stateRoot = join(pluginInit("driver", "unshare", process.cwd(), { info() {}, warn() {}, debug() {} }).stateDir, "..");
  const artefacts: string[] = [];
  for (const plugin of await readdir(stateRoot).catch(() => [] as string[])) {
    const store = join(stateRoot, plugin, "artifacts");
    for (const id of await readdir(store).catch(() => [] as string[])) {
      const record = await readFile(join(store, id, "record.json"), "utf8").catch(() => undefined);
      if (record && (JSON.parse(record) as { labels: Record<string, string> }).labels[LABELS.build] === runId)
        artefacts.push(`artefact ${id}`);
    }
  }
  return [...machines.map((name) => `machine ${name}`), ...processes, ...artefacts];
}

import { type Emulator, type EmulatorOptions, resourcesTagged, seededImageOptions, startEmulator } from "@kiln/ec2-emulator";
import { afterAll } from "vitest";

/**
 * One emulator per test file, with short transitions, stopped (with everything it still runs) after the file. `current()`
 * gives it to tests; `options()` the driver options that bake from its seeded Debian AMI.
 */
export function fileEmulator(settings: EmulatorOptions = {}) {
  let emulator: Emulator | undefined;
  afterAll(() => emulator?.stop());
  const current = async () => (emulator ??= await startEmulator({ transitionDelayMs: 100, ...settings }));
  return {
    current,
    async options(extra: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
      return seededImageOptions((await current()).endpoint, extra);
    },
    /** Every live resource (instance, key pair, group, AMI, snapshot) tagged with the run id; a snapshot names its AMI. */
    async leftovers(runId: string): Promise<string[]> {
      const resources = (await current()).resources();
      const owners = new Map(resources.snapshots.map((snapshot) => [snapshot.snapshotId, snapshot.imageId]));
      return resourcesTagged(resources, "dev.kiln.build", runId).map((id) => (owners.get(id) ? `${id} of ${owners.get(id)}` : id));
    },
  };
}

import { BASE_AMI_ID, type Emulator, type EmulatorOptions, resourcesTagged, startEmulator } from "@kiln/ec2-emulator";
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
      const { endpoint } = await current();
      return {
        region: "us-east-1",
        endpoint,
        source: BASE_AMI_ID,
        instance_type: "t3.micro",
        ssh_username: "admin",
        ssh_timeout: "60s",
        polling: { delay: "200ms" },
        ...extra,
      };
    },
    /** Every live resource (instance, key pair, group, AMI, snapshot) tagged with the run id; a snapshot names its AMI. */
    async leftovers(runId: string): Promise<string[]> {
      const resources = (await current()).resources();
      const owners = new Map(resources.snapshots.map((snapshot) => [snapshot.snapshotId, snapshot.imageId]));
      return resourcesTagged(resources, "dev.kiln.build", runId).map((id) => (owners.get(id) ? `${id} of ${owners.get(id)}` : id));
    },
  };
}

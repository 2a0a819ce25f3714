import { DescribeInstancesCommand, EC2Client, type Instance } from "@aws-sdk/client-ec2";
import { type Emulator, startEmulator } from "../src/index.js";

/** An emulator with short transitions; dispose it (`await using`) so its containers go even when the test fails. */
export function testEmulator(options: Parameters<typeof startEmulator>[0] = {}): Promise<Emulator> {
  return startEmulator({ transitionDelayMs: 200, ...options });
}

/** The real SDK client, pointed at the emulator with fake static credentials (signatures are not checked). */
export function ec2Client(emulator: Emulator, maxAttempts = 3): EC2Client {
  return new EC2Client({
    endpoint: emulator.endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "AKIDKILNTEST", secretAccessKey: "kiln-test-secret" },
    maxAttempts,
  });
}

/** Polls DescribeInstances until the instance reaches `state` (or fails after `timeoutMs`). */
export async function waitForState(client: EC2Client, instanceId: string, state: string, timeoutMs = 60_000): Promise<Instance> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { Reservations } = await client.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
    const instance = Reservations?.[0]?.Instances?.[0];
    if (instance?.State?.Name === state) return instance;
    if (Date.now() > deadline) throw new Error(`instance ${instanceId} still ${instance?.State?.Name} after ${timeoutMs} ms, wanted ${state}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** Name of the SDK error a promise rejects with. */
export async function errorName(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return (error as { name?: string }).name ?? String(error);
  }
  throw new Error("expected the call to fail");
}

import { DescribeImagesCommand, DescribeInstancesCommand, EC2Client, type Image, type Instance } from "@aws-sdk/client-ec2";
import Docker from "dockerode";
import { type Emulator, startEmulator } from "../src/index.js";

const docker = new Docker();

/** An emulator with short transitions; dispose it (`await using`) so its containers go even when the test fails. */
export function testEmulator(options: Parameters<typeof startEmulator>[0] = {}): Promise<Emulator> {
  return startEmulator({ transitionDelayMs: 200, ...options });
}

/** The real SDK client, pointed at the emulator with fake static credentials (signatures are not checked); the region signs requests. */
export function ec2Client(
  emulator: Emulator,
  { maxAttempts = 3, region = "us-east-1" }: { maxAttempts?: number; region?: string } = {},
): EC2Client {
  return new EC2Client({
    endpoint: emulator.endpoint,
    region,
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
    if (Date.now() > deadline)
      throw new Error(`instance ${instanceId} still ${instance?.State?.Name} after ${timeoutMs} ms, wanted ${state}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** Polls DescribeImages until the AMI reaches `state`. */
export async function waitForImage(client: EC2Client, imageId: string, state = "available", timeoutMs = 60_000): Promise<Image> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const image = (await client.send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images?.[0];
    if (image?.State === state) return image;
    if (Date.now() > deadline) throw new Error(`image ${imageId} still ${image?.State} after ${timeoutMs} ms, wanted ${state}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Output of a shell command in an instance's container (docker exec: quicker than SSH, same effect on the disk). */
export async function shell(emulator: Emulator, instanceId: string, script: string): Promise<string> {
  const containerId = emulator.resources().instances.find((i) => i.instanceId === instanceId)?.containerId ?? "";
  const exec = await docker
    .getContainer(containerId)
    .exec({ Cmd: ["/bin/sh", "-c", script], AttachStdout: true, AttachStderr: true, Tty: true });
  const stream = await exec.start({ Tty: true });
  const chunks: Buffer[] = [];
  await new Promise((resolve) => stream.on("data", (chunk: Buffer) => chunks.push(chunk)).on("end", resolve));
  return Buffer.concat(chunks).toString("utf8").trim();
}

/** A shell snippet that waits (up to 2 minutes, for a loaded machine) for a file to exist; put it before reading what boot wrote. */
export const waitForFile = (path: string): string => `for i in $(seq 1200); do [ -e ${path} ] && break; sleep 0.1; done; `;

/** Name of the SDK error a promise rejects with. */
export async function errorName(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return (error as { name?: string }).name ?? String(error);
  }
  throw new Error("expected the call to fail");
}

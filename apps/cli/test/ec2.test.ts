import { fileURLToPath } from "node:url";
import { DescribeImagesCommand, EC2Client } from "@aws-sdk/client-ec2";
import { type Emulator, resourcesTagged, startEmulator } from "@kiln/ec2-emulator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kiln, runIdOf } from "./helpers.js";

const example = fileURLToPath(new URL("../../../examples/ec2/", import.meta.url));
// The SDK's default credential chain reads these; the emulator checks requests are signed, not by whom.
const credentials = { AWS_ACCESS_KEY_ID: "AKIDKILNTEST", AWS_SECRET_ACCESS_KEY: "kiln-test-secret", AWS_EC2_METADATA_DISABLED: "true" };

describe("examples/ec2 through the EC2 emulator", () => {
  let emulator: Emulator;
  beforeAll(async () => {
    emulator = await startEmulator({ transitionDelayMs: 200 });
  });
  afterAll(() => emulator?.stop());

  it("kiln build bakes the AMI with the shell provisioner and verifies it from a new instance", async () => {
    const run = await kiln(["build", "--force", "--var", `endpoint=${emulator.endpoint}`], { cwd: example, env: credentials });
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const runId = runIdOf(run.stdout, run.stderr);
    expect(run.stdout).toMatch(/web-ami: ✓ http :8080/);
    expect(run.stdout).toMatch(/web-ami: baked ami-\w+ as kiln-example\/web-ami:1\.0\.0/);
    const amiId = /baked (ami-\w+)/.exec(run.stdout)?.[1];
    const client = new EC2Client({ region: "us-east-1", endpoint: emulator.endpoint, credentials: { accessKeyId: "x", secretAccessKey: "x" } });
    const [image] = (await client.send(new DescribeImagesCommand({ ImageIds: [amiId as string] }))).Images ?? [];
    expect(image?.Name).toMatch(/^kiln-web-1\.0\.0-\d{8}-\d{6}$/);
    expect(Object.fromEntries((image?.Tags ?? []).map((tag) => [tag.Key, tag.Value]))).toMatchObject({ app: "web", "dev.kiln.image": "web-ami", "dev.kiln.verify": "passed", "kiln:ref:kiln-example/web-ami:1.0.0": "" });
    // Only the AMI and its snapshot outlive the bake: no instance, key pair or security group.
    const left = resourcesTagged(emulator.resources(), "dev.kiln.build", runId);
    expect(left.sort()).toEqual([amiId, image?.BlockDeviceMappings?.[0]?.Ebs?.SnapshotId].sort());
  });

  it("Ctrl-C while the AMI is being created exits 130 and leaves nothing behind", async () => {
    let sent = false;
    const run = await kiln(["build", "--force", "--var", `endpoint=${emulator.endpoint}`], {
      cwd: example,
      env: credentials,
      onStdout: (chunk, child) => {
        if (!sent && /waiting for AMI ami-\w+ in us-east-1 to be available/.test(chunk)) {
          sent = true;
          child.kill("SIGINT");
        }
      },
    });
    expect(sent).toBe(true);
    expect(run.code).toBe(130);
    expect(resourcesTagged(emulator.resources(), "dev.kiln.build", runIdOf(run.stdout, run.stderr))).toEqual([]);
  });

  it("an unreachable endpoint fails fast with a hint to start the emulator", async () => {
    const run = await kiln(["build", "--force", "--var", "endpoint=http://127.0.0.1:9"], { cwd: example, env: credentials });
    expect(run.code).toBe(1);
    expect(run.stdout + run.stderr).toMatch(/ECONNREFUSED[\s\S]*is the EC2 emulator running/);
  });

  it("kiln validate refuses a bad option with its place in the bake file, exit 2", async () => {
    const run = await kiln(["validate", "--var", "region="], { cwd: example, env: credentials });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/kiln\.yaml:\d+:\d+: images\.web-ami\.region/);
  });
});

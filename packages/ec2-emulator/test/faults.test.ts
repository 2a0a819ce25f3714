import {
  CreateKeyPairCommand,
  CreateSecurityGroupCommand,
  DeleteKeyPairCommand,
  DeleteSecurityGroupCommand,
  DescribeImagesCommand,
  DescribeKeyPairsCommand,
  RunInstancesCommand,
} from "@aws-sdk/client-ec2";
import Docker from "dockerode";
import { describe, expect, it } from "vitest";
import { BASE_AMI_ID, isEmpty, startEmulator } from "../src/index.js";
import { ec2Client, errorName, testEmulator, waitForState } from "./helpers.js";

const docker = new Docker();

describe("fault injection and leak reporting", () => {
  it("fails the nth call of an action with the given code, which the SDK surfaces", async () => {
    await using emulator = await testEmulator();
    const client = ec2Client(emulator);
    emulator.injectFault("DescribeImages", { code: "UnauthorizedOperation", message: "You are not authorized", nth: 2 });
    await client.send(new DescribeImagesCommand({}));
    const error = await client
      .send(new DescribeImagesCommand({}))
      .catch((caught: unknown) => caught as { name: string; message: string; $metadata: { httpStatusCode?: number } });
    expect(error).toMatchObject({ name: "UnauthorizedOperation", message: "You are not authorized", $metadata: { httpStatusCode: 400 } });
    await client.send(new DescribeImagesCommand({}));
    expect(emulator.callCounts().DescribeImages).toBe(3);
  });

  it("applies faults given at start-up", async () => {
    await using emulator = await testEmulator({ faults: [{ action: "CreateKeyPair", code: "InvalidKeyPair.Duplicate" }] });
    expect(await errorName(ec2Client(emulator).send(new CreateKeyPairCommand({ KeyName: "k" })))).toBe("InvalidKeyPair.Duplicate");
  });

  it("throttles: the SDK's own retries get through a short burst and surface RequestLimitExceeded for a long one", async () => {
    await using emulator = await testEmulator();
    const client = ec2Client(emulator, { maxAttempts: 3 });
    emulator.throttle("DescribeKeyPairs", 2);
    await client.send(new DescribeKeyPairsCommand({}));
    expect(emulator.callCounts().DescribeKeyPairs).toBe(3);
    emulator.throttle("DescribeKeyPairs", 5);
    const error = await client
      .send(new DescribeKeyPairsCommand({}))
      .catch((caught: unknown) => caught as { name: string; $metadata: { httpStatusCode?: number } });
    expect(error).toMatchObject({ name: "RequestLimitExceeded", $metadata: { httpStatusCode: 503 } });
  });

  it("refuses unsigned requests and unknown actions with EC2's error envelope; answers GET queries", async () => {
    await using emulator = await testEmulator();
    const unsigned = await fetch(`${emulator.endpoint}/?Action=DescribeImages&Version=2016-11-15`);
    expect(unsigned.status).toBe(401);
    expect(await unsigned.text()).toMatch(
      /<Response><Errors><Error><Code>AuthFailure<\/Code>.*<RequestID>[0-9a-f-]+<\/RequestID><\/Response>/,
    );
    const headers = { authorization: "AWS4-HMAC-SHA256 Credential=x/20261127/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0" };
    const unknown = await fetch(`${emulator.endpoint}/?Action=LaunchRockets&Version=2016-11-15`, { headers });
    expect(unknown.status).toBe(400);
    expect(await unknown.text()).toContain("<Code>InvalidAction</Code>");
    const images = await fetch(
      `${emulator.endpoint}/?Action=DescribeImages&Version=2016-11-15&Filter.1.Name=name&Filter.1.Value.1=debian-*`,
      { headers },
    );
    const xml = await images.text();
    expect(xml).toContain('<DescribeImagesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>');
    expect(xml).toContain(`<imageId>${BASE_AMI_ID}</imageId>`);
  });

  it("lists live resources (also over HTTP) and none after stop()", async () => {
    const emulator = await startEmulator({ transitionDelayMs: 200 });
    try {
      const client = ec2Client(emulator);
      await client.send(new CreateKeyPairCommand({ KeyName: "leak", KeyType: "ed25519" }));
      await client.send(new CreateSecurityGroupCommand({ GroupName: "leak", Description: "leak" }));
      const run = await client.send(new RunInstancesCommand({ ImageId: BASE_AMI_ID, KeyName: "leak", MinCount: 1, MaxCount: 1 }));
      await waitForState(client, run.Instances?.[0]?.InstanceId ?? "", "running");
      const listed = (await (await fetch(`${emulator.endpoint}/_kiln/resources`)).json()) as ReturnType<typeof emulator.resources>;
      expect(listed.instances).toHaveLength(1);
      expect(listed.keyPairs.map((k) => k.keyName)).toEqual(["leak"]);
      expect(listed.securityGroups.map((g) => g.groupName)).toEqual(["leak"]);
      expect(listed.images).toEqual([]);
      // The caller deletes its key pair and group; the still-running instance is stop()'s to clean up.
      await client.send(new DeleteKeyPairCommand({ KeyName: "leak" }));
      await client.send(new DeleteSecurityGroupCommand({ GroupName: "leak" }));
    } finally {
      await emulator.stop();
    }
    expect(emulator.resources()).toEqual({ instances: [], keyPairs: [], securityGroups: [], images: [], snapshots: [], volumes: [] });
    expect(isEmpty(emulator.resources())).toBe(true);
    expect(await docker.listContainers({ all: true, filters: { label: [`dev.kiln.build=${emulator.runId}`] } })).toEqual([]);
  });
});

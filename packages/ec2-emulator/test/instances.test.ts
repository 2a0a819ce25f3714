import { CreateKeyPairCommand, DescribeInstancesCommand, RunInstancesCommand, TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import { connectSsh } from "@kiln/communicator-ssh";
import Docker from "dockerode";
import { describe, expect, it } from "vitest";
import { BASE_AMI_ID } from "../src/index.js";
import { ec2Client, errorName, testEmulator, waitForState } from "./helpers.js";

const docker = new Docker();

describe("instances", () => {
  it("runs an instance reachable over SSH on its own loopback address, runs its user data, and terminates it", async () => {
    await using emulator = await testEmulator();
    const client = ec2Client(emulator);
    const { KeyMaterial } = await client.send(new CreateKeyPairCommand({ KeyName: "bake", KeyType: "ed25519" }));
    const userData = Buffer.from("#!/bin/sh\necho baked-by-user-data > /tmp/user-data-ran\n").toString("base64");
    const run = await client.send(
      new RunInstancesCommand({
        ImageId: BASE_AMI_ID,
        InstanceType: "t3.micro",
        KeyName: "bake",
        MinCount: 1,
        MaxCount: 1,
        UserData: userData,
        TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: "Name", Value: "kiln-test" }] }],
      }),
    );
    const launched = run.Instances?.[0];
    expect(launched?.State?.Name).toBe("pending");
    const instanceId = launched?.InstanceId ?? "";

    const running = await waitForState(client, instanceId, "running");
    expect(running.PublicIpAddress).toMatch(/^127\.0\.0\.\d+$/);
    expect(running.PrivateIpAddress).toBe(running.PublicIpAddress);
    expect(running.Tags).toEqual([{ Key: "Name", Value: "kiln-test" }]);

    const byTag = await client.send(
      new DescribeInstancesCommand({
        Filters: [
          { Name: "tag:Name", Values: ["kiln-test"] },
          { Name: "instance-state-name", Values: ["running"] },
        ],
      }),
    );
    expect(byTag.Reservations?.flatMap((r) => r.Instances ?? []).map((i) => i.InstanceId)).toEqual([instanceId]);

    await using machine = await connectSsh({
      host: running.PublicIpAddress ?? "",
      port: 22,
      user: "admin",
      privateKey: KeyMaterial ?? "",
      deadlineMs: 60_000,
    });
    const whoami = await machine.exec("id -un && hostname");
    expect(whoami.stdout.split("\n")[0]).toBe("admin");
    // User data runs after sshd starts, so it may still be running when the first login succeeds.
    const ran = await machine.exec("for i in $(seq 600); do [ -f /tmp/user-data-ran ] && break; sleep 0.1; done; cat /tmp/user-data-ran");
    expect(ran.stdout.trim()).toBe("baked-by-user-data");

    const terminated = await client.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }));
    expect(terminated.TerminatingInstances?.[0]).toMatchObject({
      InstanceId: instanceId,
      PreviousState: { Name: "running" },
      CurrentState: { Name: "shutting-down" },
    });
    await waitForState(client, instanceId, "terminated");
    const containers = await docker.listContainers({ all: true, filters: { label: [`dev.kiln.build=${emulator.runId}`] } });
    expect(containers).toEqual([]);
    expect(emulator.resources().instances).toEqual([]);
  });

  it("answers InvalidInstanceID.NotFound for an unknown id, and for a new one during the eventual-consistency window", async () => {
    await using emulator = await testEmulator({ eventualConsistencyMs: 1500 });
    const client = ec2Client(emulator);
    expect(await errorName(client.send(new DescribeInstancesCommand({ InstanceIds: ["i-0123456789abcdef0"] })))).toBe(
      "InvalidInstanceID.NotFound",
    );
    const run = await client.send(new RunInstancesCommand({ ImageId: BASE_AMI_ID, InstanceType: "t3.micro", MinCount: 1, MaxCount: 1 }));
    const instanceId = run.Instances?.[0]?.InstanceId ?? "";
    expect(await errorName(client.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] })))).toBe("InvalidInstanceID.NotFound");
    await new Promise((resolve) => setTimeout(resolve, 1600));
    await waitForState(client, instanceId, "running");
    expect(
      await errorName(client.send(new RunInstancesCommand({ ImageId: BASE_AMI_ID, KeyName: "missing", MinCount: 1, MaxCount: 1 }))),
    ).toBe("InvalidKeyPair.NotFound");
  });

  it("accepts an RSA key pair for root logins", async () => {
    await using emulator = await testEmulator();
    const client = ec2Client(emulator);
    const { KeyMaterial } = await client.send(new CreateKeyPairCommand({ KeyName: "rsa", KeyType: "rsa" }));
    const run = await client.send(new RunInstancesCommand({ ImageId: BASE_AMI_ID, KeyName: "rsa", MinCount: 1, MaxCount: 1 }));
    const running = await waitForState(client, run.Instances?.[0]?.InstanceId ?? "", "running");
    await using machine = await connectSsh({
      host: running.PublicIpAddress ?? "",
      user: "root",
      privateKey: KeyMaterial ?? "",
      deadlineMs: 60_000,
    });
    expect((await machine.exec("id -u")).stdout.trim()).toBe("0");
  });

  it("shows a launch that fails after RunInstances answered as terminated, with the reason", async () => {
    await using emulator = await testEmulator({ baseImage: "kiln-ec2-emulator/does-not-exist:none" });
    const client = ec2Client(emulator);
    const run = await client.send(new RunInstancesCommand({ ImageId: BASE_AMI_ID, MinCount: 1, MaxCount: 1 }));
    const terminated = await waitForState(client, run.Instances?.[0]?.InstanceId ?? "", "terminated");
    expect(terminated.StateReason?.Code).toBe("Server.InternalError");
    expect(terminated.StateReason?.Message).toMatch(/does-not-exist/);
    expect(emulator.resources().instances).toEqual([]);
  });
});

import {
  CreateImageCommand,
  CreateKeyPairCommand,
  RunInstancesCommand,
  StartInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import { connectSsh } from "@kiln/communicator-ssh";
import Docker from "dockerode";
import { describe, expect, it } from "vitest";
import { BASE_AMI_ID } from "../src/index.js";
import { ec2Client, errorName, shell, testEmulator, waitForFile, waitForImage, waitForState } from "./helpers.js";

const docker = new Docker();
const HOST_KEY = "/etc/ssh/ssh_host_ed25519_key.pub";
const BOOT_FINISHED = "/var/lib/cloud/instance/boot-finished";

describe("StopInstances and StartInstances", () => {
  it("stops and starts the same container: same address and host keys, user data not rerun; images and terminates a stopped instance", async () => {
    await using emulator = await testEmulator();
    const client = ec2Client(emulator);
    const { KeyMaterial = "" } = await client.send(new CreateKeyPairCommand({ KeyName: "k", KeyType: "ed25519" }));
    const userData = Buffer.from("#!/bin/sh\necho ran >> /etc/user-data-runs\n").toString("base64");
    const run = await client.send(
      new RunInstancesCommand({ ImageId: BASE_AMI_ID, KeyName: "k", MinCount: 1, MaxCount: 1, UserData: userData }),
    );
    const instanceId = run.Instances?.[0]?.InstanceId ?? "";
    const running = await waitForState(client, instanceId, "running");
    const hostKey = await shell(emulator, instanceId, `${waitForFile(BOOT_FINISHED)}cat ${HOST_KEY}`);
    expect(hostKey).toMatch(/^ssh-ed25519 /);
    const containerId = emulator.resources().instances[0]?.containerId ?? "";

    const stopping = await client.send(new StopInstancesCommand({ InstanceIds: [instanceId], Force: true }));
    expect(stopping.StoppingInstances).toEqual([
      { InstanceId: instanceId, PreviousState: { Code: 16, Name: "running" }, CurrentState: { Code: 64, Name: "stopping" } },
    ]);
    expect(await errorName(client.send(new StartInstancesCommand({ InstanceIds: [instanceId] })))).toBe("IncorrectInstanceState");
    const stopped = await waitForState(client, instanceId, "stopped");
    expect(stopped.PublicIpAddress).toBe(running.PublicIpAddress);
    expect(stopped.PrivateIpAddress).toBe(running.PrivateIpAddress);
    expect((await docker.getContainer(containerId).inspect()).State.Running).toBe(false);
    const again = await client.send(new StopInstancesCommand({ InstanceIds: [instanceId] }));
    expect(again.StoppingInstances?.[0]?.CurrentState?.Name).toBe("stopped");

    // Another emulator on this host (a parallel test file) must not take the stopped instance's address.
    {
      await using other = await testEmulator();
      const otherClient = ec2Client(other);
      const otherRun = await otherClient.send(new RunInstancesCommand({ ImageId: BASE_AMI_ID, MinCount: 1, MaxCount: 1 }));
      const otherInstance = await waitForState(otherClient, otherRun.Instances?.[0]?.InstanceId ?? "", "running");
      expect(otherInstance.PublicIpAddress).not.toBe(running.PublicIpAddress);
    }

    // CreateImage commits the stopped container; an instance of that AMI is a new instance: new host keys, no user data rerun.
    const { ImageId = "" } = await client.send(new CreateImageCommand({ InstanceId: instanceId, Name: "from-stopped" }));
    await waitForImage(client, ImageId);
    const fromImage = await client.send(new RunInstancesCommand({ ImageId, MinCount: 1, MaxCount: 1 }));
    const fromImageId = fromImage.Instances?.[0]?.InstanceId ?? "";
    await waitForState(client, fromImageId, "running");
    expect(await shell(emulator, fromImageId, `${waitForFile(BOOT_FINISHED)}cat ${HOST_KEY}`)).not.toBe(hostKey);
    expect(await shell(emulator, fromImageId, "cat /etc/user-data-runs")).toBe("ran");

    const starting = await client.send(new StartInstancesCommand({ InstanceIds: [instanceId] }));
    expect(starting.StartingInstances).toEqual([
      { InstanceId: instanceId, PreviousState: { Code: 80, Name: "stopped" }, CurrentState: { Code: 0, Name: "pending" } },
    ]);
    const restarted = await waitForState(client, instanceId, "running");
    expect(restarted.PublicIpAddress).toBe(running.PublicIpAddress);
    expect(emulator.resources().instances.find((i) => i.instanceId === instanceId)?.containerId).toBe(containerId);
    {
      await using machine = await connectSsh({
        host: restarted.PublicIpAddress ?? "",
        port: 22,
        user: "admin",
        privateKey: KeyMaterial,
        deadlineMs: 60_000,
      });
      expect((await machine.exec(`${waitForFile(BOOT_FINISHED)}cat ${HOST_KEY}; cat /etc/user-data-runs`)).stdout.trim()).toBe(
        `${hostKey}\nran`,
      );
    }

    await client.send(new StopInstancesCommand({ InstanceIds: [instanceId] }));
    await waitForState(client, instanceId, "stopped");
    const terminating = await client.send(new TerminateInstancesCommand({ InstanceIds: [instanceId, fromImageId] }));
    expect(terminating.TerminatingInstances?.[0]).toMatchObject({
      PreviousState: { Name: "stopped" },
      CurrentState: { Name: "shutting-down" },
    });
    await waitForState(client, instanceId, "terminated");
    await waitForState(client, fromImageId, "terminated");
    expect(await errorName(client.send(new StopInstancesCommand({ InstanceIds: [instanceId] })))).toBe("IncorrectInstanceState");
    expect(await errorName(client.send(new StartInstancesCommand({ InstanceIds: [instanceId] })))).toBe("IncorrectInstanceState");
    expect(await docker.listContainers({ all: true, filters: { label: [`dev.kiln.build=${emulator.runId}`] } })).toEqual([]);
    expect(emulator.resources().instances).toEqual([]);
  });

  it("refuses to stop a pending instance and terminates a stopping one", async () => {
    await using emulator = await testEmulator({ transitionDelays: { stop: 2000 } });
    const client = ec2Client(emulator);
    const run = await client.send(new RunInstancesCommand({ ImageId: BASE_AMI_ID, MinCount: 1, MaxCount: 1 }));
    const instanceId = run.Instances?.[0]?.InstanceId ?? "";
    expect(await errorName(client.send(new StopInstancesCommand({ InstanceIds: [instanceId] })))).toBe("IncorrectInstanceState");
    expect(await errorName(client.send(new StopInstancesCommand({ InstanceIds: ["i-0123456789abcdef0"] })))).toBe(
      "InvalidInstanceID.NotFound",
    );
    await waitForState(client, instanceId, "running");
    await client.send(new StopInstancesCommand({ InstanceIds: [instanceId] }));
    const terminating = await client.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }));
    expect(terminating.TerminatingInstances?.[0]).toMatchObject({
      PreviousState: { Name: "stopping" },
      CurrentState: { Name: "shutting-down" },
    });
    await waitForState(client, instanceId, "terminated");
    expect(await docker.listContainers({ all: true, filters: { label: [`dev.kiln.build=${emulator.runId}`] } })).toEqual([]);
  });
});

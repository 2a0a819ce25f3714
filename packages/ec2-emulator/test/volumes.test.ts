import {
  CreateTagsCommand,
  DeleteVolumeCommand,
  DescribeVolumesCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import { describe, expect, it } from "vitest";
import { BASE_AMI_ID } from "../src/index.js";
import { ec2Client, errorName, testEmulator, waitForState } from "./helpers.js";

describe("volumes", () => {
  it("shows an instance's block devices as attached volumes, deletes them with it, and keeps the DeleteOnTermination=false one until DeleteVolume", async () => {
    await using emulator = await testEmulator();
    const client = ec2Client(emulator);
    const run = await client.send(
      new RunInstancesCommand({
        ImageId: BASE_AMI_ID,
        InstanceType: "t3.micro",
        MinCount: 1,
        MaxCount: 1,
        BlockDeviceMappings: [{ DeviceName: "/dev/sdf", Ebs: { VolumeSize: 2, VolumeType: "gp3", DeleteOnTermination: false } }],
        TagSpecifications: [{ ResourceType: "volume", Tags: [{ Key: "dev.kiln.build", Value: "r1" }] }],
      }),
    );
    const instanceId = run.Instances?.[0]?.InstanceId ?? "";
    const instance = await waitForState(client, instanceId, "running");
    const [rootId = "", dataId = ""] = instance.BlockDeviceMappings?.map((mapping) => mapping.Ebs?.VolumeId ?? "") ?? [];

    const { Volumes } = await client.send(
      new DescribeVolumesCommand({ Filters: [{ Name: "attachment.instance-id", Values: [instanceId] }] }),
    );
    expect(Volumes).toMatchObject([
      {
        VolumeId: rootId,
        Size: 8,
        VolumeType: "gp2",
        Iops: 100,
        SnapshotId: "snap-0kiln0debian12",
        AvailabilityZone: "us-east-1a",
        State: "in-use",
        Encrypted: false,
        Attachments: [{ VolumeId: rootId, InstanceId: instanceId, Device: "/dev/xvda", State: "attached", DeleteOnTermination: true }],
        Tags: [{ Key: "dev.kiln.build", Value: "r1" }],
      },
      {
        VolumeId: dataId,
        Size: 2,
        VolumeType: "gp3",
        Iops: 3000,
        Throughput: 125,
        SnapshotId: "",
        State: "in-use",
        Attachments: [{ Device: "/dev/sdf", DeleteOnTermination: false }],
      },
    ]);
    expect(Volumes?.[0]?.CreateTime).toBeInstanceOf(Date);
    expect(await errorName(client.send(new DeleteVolumeCommand({ VolumeId: dataId })))).toBe("VolumeInUse");
    await client.send(new CreateTagsCommand({ Resources: [dataId], Tags: [{ Key: "Name", Value: "data" }] }));
    expect(emulator.resources().volumes).toEqual([]);

    await client.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }));
    await waitForState(client, instanceId, "terminated");
    // Packer's cleanup asks by the `volume-id` filter: a deleted volume is simply not listed (by VolumeId.N it is NotFound).
    const left = await client.send(new DescribeVolumesCommand({ Filters: [{ Name: "volume-id", Values: [rootId, dataId] }] }));
    expect(left.Volumes).toMatchObject([
      {
        VolumeId: dataId,
        State: "available",
        Attachments: [],
        Tags: [
          { Key: "dev.kiln.build", Value: "r1" },
          { Key: "Name", Value: "data" },
        ],
      },
    ]);
    expect(await errorName(client.send(new DescribeVolumesCommand({ VolumeIds: [rootId] })))).toBe("InvalidVolume.NotFound");
    expect(emulator.resources().volumes).toEqual([
      { volumeId: dataId, state: "available", instanceId, tags: { "dev.kiln.build": "r1", Name: "data" } },
    ]);

    await client.send(new DeleteVolumeCommand({ VolumeId: dataId }));
    expect((await client.send(new DescribeVolumesCommand({ Filters: [{ Name: "status", Values: ["available"] }] }))).Volumes).toEqual([]);
    expect(await errorName(client.send(new DeleteVolumeCommand({ VolumeId: dataId })))).toBe("InvalidVolume.NotFound");
    expect(emulator.resources().volumes).toEqual([]);
  });
});

import {
  CopyImageCommand,
  CreateImageCommand,
  CreateKeyPairCommand,
  CreateTagsCommand,
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImageAttributeCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  type EC2Client,
  ModifyImageAttributeCommand,
  RunInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import { connectSsh } from "@kiln/communicator-ssh";
import Docker from "dockerode";
import { describe, expect, it } from "vitest";
import { ACCOUNT_ID, BASE_AMI_ID, type Emulator } from "../src/index.js";
import { ec2Client, errorName, shell, testEmulator, waitForImage, waitForState } from "./helpers.js";

const docker = new Docker();

/** Runs an instance of the base AMI and writes a marker file into it. */
async function bakedInstance(emulator: Emulator, client: EC2Client, userData?: string): Promise<string> {
  const run = await client.send(
    new RunInstancesCommand({
      ImageId: BASE_AMI_ID,
      MinCount: 1,
      MaxCount: 1,
      UserData: userData && Buffer.from(userData).toString("base64"),
    }),
  );
  const instanceId = run.Instances?.[0]?.InstanceId ?? "";
  await waitForState(client, instanceId, "running");
  await shell(emulator, instanceId, "echo baked > /etc/kiln-baked");
  return instanceId;
}

const committedImages = (runId: string) =>
  docker.listImages({ all: true, filters: { label: [`dev.kiln.build=${runId}`, "dev.kiln.ec2-emulator=1"] } });

async function waitForNoCommittedImages(runId: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while ((await committedImages(runId)).length > 0) {
    if (Date.now() > deadline) throw new Error("committed images left behind");
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe("CreateImage and friends", () => {
  it("bakes an AMI from an instance, launches it, copies, shares, deregisters and deletes its snapshots without leaks", async () => {
    await using emulator = await testEmulator();
    const client = ec2Client(emulator);
    const sourceId = await bakedInstance(emulator, client);
    const { ImageId = "" } = await client.send(
      new CreateImageCommand({
        InstanceId: sourceId,
        Name: "kiln-test-1",
        Description: "baked",
        TagSpecifications: [
          { ResourceType: "image", Tags: [{ Key: "dev.kiln.build", Value: "b1" }] },
          { ResourceType: "snapshot", Tags: [{ Key: "dev.kiln.build", Value: "b1" }] },
        ],
      }),
    );
    expect(ImageId).toMatch(/^ami-[0-9a-f]{17}$/);
    expect((await client.send(new DescribeImagesCommand({ ImageIds: [ImageId] }))).Images?.[0]?.State).toBe("pending");
    expect(await errorName(client.send(new CreateImageCommand({ InstanceId: sourceId, Name: "kiln-test-1" })))).toBe(
      "InvalidAMIName.Duplicate",
    );

    const image = await waitForImage(client, ImageId);
    expect(image).toMatchObject({
      Name: "kiln-test-1",
      Description: "baked",
      OwnerId: ACCOUNT_ID,
      Public: false,
      Tags: [{ Key: "dev.kiln.build", Value: "b1" }],
    });
    expect(Date.parse(image.CreationDate ?? "")).toBeGreaterThan(Date.now() - 120_000);
    const snapshotId = image.BlockDeviceMappings?.[0]?.Ebs?.SnapshotId ?? "";
    expect(snapshotId).toMatch(/^snap-[0-9a-f]{17}$/);
    const own = await client.send(
      new DescribeImagesCommand({ Owners: ["self"], Filters: [{ Name: "tag:dev.kiln.build", Values: ["b1"] }] }),
    );
    expect(own.Images?.map((i) => i.ImageId)).toEqual([ImageId]);
    const snapshots = await client.send(
      new DescribeSnapshotsCommand({ OwnerIds: ["self"], Filters: [{ Name: "tag:dev.kiln.build", Values: ["b1"] }] }),
    );
    expect(snapshots.Snapshots).toMatchObject([{ SnapshotId: snapshotId, State: "completed", OwnerId: ACCOUNT_ID }]);
    await client.send(new CreateTagsCommand({ Resources: [ImageId, snapshotId], Tags: [{ Key: "extra", Value: "yes" }] }));
    expect((await client.send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] }))).Snapshots?.[0]?.Tags).toContainEqual({
      Key: "extra",
      Value: "yes",
    });
    await client.send(new TerminateInstancesCommand({ InstanceIds: [sourceId] }));

    // A new instance of the AMI has the file and a working sshd that takes the new launch's key.
    const { KeyMaterial } = await client.send(new CreateKeyPairCommand({ KeyName: "k", KeyType: "ed25519" }));
    const run = await client.send(new RunInstancesCommand({ ImageId, KeyName: "k", MinCount: 1, MaxCount: 1 }));
    const launchedId = run.Instances?.[0]?.InstanceId ?? "";
    const launched = await waitForState(client, launchedId, "running");
    {
      await using machine = await connectSsh({
        host: launched.PublicIpAddress ?? "",
        port: 22,
        user: "admin",
        privateKey: KeyMaterial ?? "",
        deadlineMs: 60_000,
      });
      expect((await machine.exec("cat /etc/kiln-baked")).stdout.trim()).toBe("baked");
    }

    const plain = await client.send(new CopyImageCommand({ SourceImageId: ImageId, SourceRegion: "us-east-1", Name: "kiln-test-1-copy" }));
    const tagged = await client.send(
      new CopyImageCommand({ SourceImageId: ImageId, SourceRegion: "us-east-1", Name: "kiln-test-1-tagged", CopyImageTags: true }),
    );
    const plainImage = await waitForImage(client, plain.ImageId ?? "");
    expect(plainImage.Tags ?? []).toEqual([]);
    const taggedImage = await waitForImage(client, tagged.ImageId ?? "");
    expect(taggedImage.Tags).toContainEqual({ Key: "dev.kiln.build", Value: "b1" });
    expect(plainImage.BlockDeviceMappings?.[0]?.Ebs?.SnapshotId).not.toBe(snapshotId);

    await client.send(
      new ModifyImageAttributeCommand({ ImageId, LaunchPermission: { Add: [{ UserId: "210987654321" }, { Group: "all" }] } }),
    );
    const permissions = await client.send(new DescribeImageAttributeCommand({ ImageId, Attribute: "launchPermission" }));
    expect(permissions.LaunchPermissions).toEqual([{ UserId: "210987654321" }, { Group: "all" }]);
    expect((await client.send(new DescribeImagesCommand({ ImageIds: [ImageId] }))).Images?.[0]?.Public).toBe(true);
    expect(
      await errorName(
        client.send(new ModifyImageAttributeCommand({ ImageId: BASE_AMI_ID, LaunchPermission: { Add: [{ Group: "all" }] } })),
      ),
    ).toBe("AuthFailure");

    expect(await errorName(client.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId })))).toBe("InvalidSnapshot.InUse");
    await client.send(new DeregisterImageCommand({ ImageId }));
    expect(await errorName(client.send(new DescribeImagesCommand({ ImageIds: [ImageId] })))).toBe("InvalidAMIID.NotFound");
    await client.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId }));
    expect(await errorName(client.send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] })))).toBe("InvalidSnapshot.NotFound");
    for (const copy of [plainImage, taggedImage]) {
      await client.send(new DeregisterImageCommand({ ImageId: copy.ImageId }));
      await client.send(new DeleteSnapshotCommand({ SnapshotId: copy.BlockDeviceMappings?.[0]?.Ebs?.SnapshotId }));
    }
    // Every AMI is gone, but an instance still runs from the committed image: it stays until that instance terminates.
    expect(await committedImages(emulator.runId)).toHaveLength(1);
    await client.send(new TerminateInstancesCommand({ InstanceIds: [launchedId] }));
    await waitForState(client, launchedId, "terminated");
    await waitForNoCommittedImages(emulator.runId);
    expect(emulator.resources()).toMatchObject({ instances: [], images: [], snapshots: [], volumes: [] });
  });

  it("gives instances of an AMI fresh host keys without rerunning the original's user data; a pending AMI can be deregistered", async () => {
    await using emulator = await testEmulator();
    const client = ec2Client(emulator);
    const sourceId = await bakedInstance(emulator, client, "#!/bin/sh\necho ran >> /etc/user-data-runs\n");
    expect(
      await shell(
        emulator,
        sourceId,
        "for i in $(seq 600); do [ -f /etc/user-data-runs ] && break; sleep 0.1; done; cat /etc/user-data-runs",
      ),
    ).toBe("ran");
    const { ImageId = "" } = await client.send(new CreateImageCommand({ InstanceId: sourceId, Name: "fresh-keys" }));
    await waitForImage(client, ImageId);
    const run = await client.send(new RunInstancesCommand({ ImageId, MinCount: 1, MaxCount: 1 }));
    const launchedId = run.Instances?.[0]?.InstanceId ?? "";
    await waitForState(client, launchedId, "running");
    const hostKey =
      "for i in $(seq 600); do [ -s /etc/ssh/ssh_host_ed25519_key.pub ] && break; sleep 0.1; done; cat /etc/ssh/ssh_host_ed25519_key.pub";
    expect(await shell(emulator, launchedId, hostKey)).not.toBe(await shell(emulator, sourceId, hostKey));
    expect(await shell(emulator, launchedId, "sleep 0.5; cat /etc/user-data-runs")).toBe("ran");

    const pending = await client.send(new CreateImageCommand({ InstanceId: sourceId, Name: "deregistered-while-pending" }));
    await client.send(new DeregisterImageCommand({ ImageId: pending.ImageId }));
    expect(await errorName(client.send(new DescribeImagesCommand({ ImageIds: [pending.ImageId ?? ""] })))).toBe("InvalidAMIID.NotFound");
    await client.send(new DeregisterImageCommand({ ImageId }));
    await client.send(new TerminateInstancesCommand({ InstanceIds: [sourceId, launchedId] }));
    await waitForState(client, launchedId, "terminated");
    await waitForNoCommittedImages(emulator.runId);
    expect(emulator.resources().images).toEqual([]);
    expect(emulator.resources().snapshots).toHaveLength(2);
  });

  it("an instance terminated right after CreateImage still gives a whole AMI, as EC2's snapshot outlives the instance", async () => {
    await using emulator = await testEmulator();
    const client = ec2Client(emulator);
    const sourceId = await bakedInstance(emulator, client);
    await client.send(new StopInstancesCommand({ InstanceIds: [sourceId] }));
    await waitForState(client, sourceId, "stopped");
    const { ImageId = "" } = await client.send(new CreateImageCommand({ InstanceId: sourceId, Name: "terminated-meanwhile" }));
    await client.send(new TerminateInstancesCommand({ InstanceIds: [sourceId] }));
    await waitForState(client, sourceId, "terminated");
    await waitForImage(client, ImageId);
    const run = await client.send(new RunInstancesCommand({ ImageId, MinCount: 1, MaxCount: 1 }));
    const launchedId = run.Instances?.[0]?.InstanceId ?? "";
    await waitForState(client, launchedId, "running");
    expect(await shell(emulator, launchedId, "cat /etc/kiln-baked")).toBe("baked");
    await client.send(new TerminateInstancesCommand({ InstanceIds: [launchedId] }));
    await waitForState(client, launchedId, "terminated");
  });

  it("refuses an instance that is not running; stop() removes AMIs, snapshots and committed images left behind", async () => {
    const emulator = await testEmulator();
    try {
      const client = ec2Client(emulator);
      expect(await errorName(client.send(new CreateImageCommand({ InstanceId: "i-0123456789abcdef0", Name: "nope" })))).toBe(
        "InvalidInstanceID.NotFound",
      );
      const instanceId = await bakedInstance(emulator, client);
      const { ImageId = "" } = await client.send(new CreateImageCommand({ InstanceId: instanceId, Name: "left behind", NoReboot: true }));
      await waitForImage(client, ImageId);
      expect(emulator.resources().images).toEqual([
        { imageId: ImageId, name: "left behind", state: "available", region: "us-east-1", tags: {} },
      ]);
      const listed = (await (await fetch(`${emulator.endpoint}/_kiln/resources`)).json()) as ReturnType<typeof emulator.resources>;
      expect(listed.snapshots).toHaveLength(1);
      expect(await committedImages(emulator.runId)).toHaveLength(1);
    } finally {
      await emulator.stop();
    }
    expect(emulator.resources()).toEqual({ instances: [], keyPairs: [], securityGroups: [], images: [], snapshots: [], volumes: [] });
    expect(await committedImages(emulator.runId)).toEqual([]);
    expect(await docker.listContainers({ all: true, filters: { label: [`dev.kiln.build=${emulator.runId}`] } })).toEqual([]);
  });
});

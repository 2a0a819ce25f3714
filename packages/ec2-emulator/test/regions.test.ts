import {
  CopyImageCommand,
  CreateImageCommand,
  CreateTagsCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  type EC2Client,
  RunInstancesCommand,
} from "@aws-sdk/client-ec2";
import { describe, expect, it } from "vitest";
import { ACCOUNT_ID, BASE_AMI_ID, resourcesTagged } from "../src/index.js";
import { ec2Client, errorName, testEmulator, waitForImage, waitForState } from "./helpers.js";

const defaultKey = (region: string) => `arn:aws:kms:${region}:${ACCOUNT_ID}:alias/aws/ebs`;

async function snapshotOf(client: EC2Client, snapshotId: string) {
  return (await client.send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] }))).Snapshots?.[0];
}

describe("regions and encryption", () => {
  it("keeps AMIs and snapshots in their region, copies across regions with encryption, and sees the seeded AMI everywhere", async () => {
    await using emulator = await testEmulator();
    const east = ec2Client(emulator);
    const west = ec2Client(emulator, { region: "us-west-2" });
    expect((await west.send(new DescribeImagesCommand({ ImageIds: [BASE_AMI_ID] }))).Images?.[0]?.ImageId).toBe(BASE_AMI_ID);

    // An instance with an encrypted 12 GiB gp3 root: its AMI's snapshot inherits size and encryption.
    const run = await east.send(
      new RunInstancesCommand({
        ImageId: BASE_AMI_ID,
        MinCount: 1,
        MaxCount: 1,
        BlockDeviceMappings: [{ DeviceName: "/dev/xvda", Ebs: { VolumeSize: 12, VolumeType: "gp3", Encrypted: true } }],
      }),
    );
    const instanceId = run.Instances?.[0]?.InstanceId ?? "";
    await waitForState(east, instanceId, "running");
    const tagged = [{ Key: "dev.kiln.build", Value: "r1" }];
    const { ImageId = "" } = await east.send(
      new CreateImageCommand({
        InstanceId: instanceId,
        Name: "kiln-regions",
        TagSpecifications: [
          { ResourceType: "image", Tags: tagged },
          { ResourceType: "snapshot", Tags: tagged },
        ],
      }),
    );
    const image = await waitForImage(east, ImageId);
    const ebs = image.BlockDeviceMappings?.[0]?.Ebs;
    expect(ebs).toMatchObject({ VolumeSize: 12, VolumeType: "gp3", Encrypted: true, KmsKeyId: defaultKey("us-east-1") });
    const snapshotId = ebs?.SnapshotId ?? "";
    expect(await snapshotOf(east, snapshotId)).toMatchObject({
      VolumeSize: 12,
      Encrypted: true,
      KmsKeyId: defaultKey("us-east-1"),
      State: "completed",
    });

    // Another region sees neither the AMI nor its snapshot.
    expect(await errorName(west.send(new DescribeImagesCommand({ ImageIds: [ImageId] })))).toBe("InvalidAMIID.NotFound");
    expect((await west.send(new DescribeImagesCommand({ Owners: ["self"] }))).Images).toEqual([]);
    expect(await errorName(west.send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] })))).toBe("InvalidSnapshot.NotFound");
    expect(await errorName(west.send(new DeregisterImageCommand({ ImageId })))).toBe("InvalidAMIID.NotFound");
    expect(await errorName(west.send(new CreateTagsCommand({ Resources: [ImageId], Tags: [{ Key: "a", Value: "b" }] })))).toBe("InvalidID");
    expect(await errorName(west.send(new RunInstancesCommand({ ImageId, MinCount: 1, MaxCount: 1 })))).toBe("InvalidAMIID.NotFound");

    // CopyImage runs in the destination region and looks the source up in SourceRegion; names are unique per region only.
    const key = `arn:aws:kms:us-west-2:${ACCOUNT_ID}:key/kiln-test`;
    const copy = await west.send(
      new CopyImageCommand({
        SourceImageId: ImageId,
        SourceRegion: "us-east-1",
        Name: "kiln-regions",
        Encrypted: true,
        KmsKeyId: key,
        CopyImageTags: true,
        TagSpecifications: [{ ResourceType: "snapshot", Tags: tagged }],
      }),
    );
    const copied = await waitForImage(west, copy.ImageId ?? "");
    expect(copied.BlockDeviceMappings?.[0]?.Ebs).toMatchObject({ VolumeSize: 12, Encrypted: true, KmsKeyId: key });
    expect(await snapshotOf(west, copied.BlockDeviceMappings?.[0]?.Ebs?.SnapshotId ?? "")).toMatchObject({
      Encrypted: true,
      KmsKeyId: key,
    });
    expect(await errorName(east.send(new DescribeImagesCommand({ ImageIds: [copy.ImageId ?? ""] })))).toBe("InvalidAMIID.NotFound");
    expect(
      await errorName(west.send(new CopyImageCommand({ SourceImageId: ImageId, SourceRegion: "us-west-2", Name: "wrong-region" }))),
    ).toBe("InvalidAMIID.NotFound");
    expect(
      await errorName(west.send(new CopyImageCommand({ SourceImageId: ImageId, SourceRegion: "us-east-1", Name: "k", KmsKeyId: key }))),
    ).toBe("InvalidParameterCombination");
    const launched = await west.send(new RunInstancesCommand({ ImageId: copy.ImageId, MinCount: 1, MaxCount: 1 }));
    const launchedInstance = await waitForState(west, launched.Instances?.[0]?.InstanceId ?? "", "running");
    expect(launchedInstance.Placement?.AvailabilityZone).toBe("us-west-2a");

    // Encrypted=true without a key takes the destination's default key; an encrypted source stays encrypted: with its own key
    // within its region, with the destination's default key in another (a KMS key belongs to one region).
    const fromPublic = await west.send(
      new CopyImageCommand({ SourceImageId: BASE_AMI_ID, SourceRegion: "eu-west-1", Name: "debian-encrypted", Encrypted: true }),
    );
    expect((await waitForImage(west, fromPublic.ImageId ?? "")).BlockDeviceMappings?.[0]?.Ebs).toMatchObject({
      Encrypted: true,
      KmsKeyId: defaultKey("us-west-2"),
    });
    const sameRegion = await west.send(
      new CopyImageCommand({ SourceImageId: copy.ImageId, SourceRegion: "us-west-2", Name: "kiln-regions-copy" }),
    );
    expect((await waitForImage(west, sameRegion.ImageId ?? "")).BlockDeviceMappings?.[0]?.Ebs).toMatchObject({
      Encrypted: true,
      KmsKeyId: key,
    });
    const back = await east.send(
      new CopyImageCommand({ SourceImageId: copy.ImageId, SourceRegion: "us-west-2", Name: "kiln-regions-back" }),
    );
    expect((await waitForImage(east, back.ImageId ?? "")).BlockDeviceMappings?.[0]?.Ebs).toMatchObject({
      Encrypted: true,
      KmsKeyId: defaultKey("us-east-1"),
    });

    // A presigned request (credential scope in the query string) is answered for its region.
    const credential = encodeURIComponent("AKIDKILNTEST/20261127/us-west-2/ec2/aws4_request");
    const presigned = await fetch(
      `${emulator.endpoint}/?Action=DescribeImages&Version=2016-11-15&ImageId.1=${copy.ImageId}&X-Amz-Credential=${credential}&X-Amz-Signature=0`,
    );
    expect(await presigned.text()).toContain(`<imageId>${copy.ImageId}</imageId>`);

    const resources = emulator.resources();
    expect(resources.images.map((i) => [i.imageId, i.region])).toEqual([
      [ImageId, "us-east-1"],
      [copy.ImageId, "us-west-2"],
      [fromPublic.ImageId, "us-west-2"],
      [sameRegion.ImageId, "us-west-2"],
      [back.ImageId, "us-east-1"],
    ]);
    const copySnapshot = copied.BlockDeviceMappings?.[0]?.Ebs?.SnapshotId;
    expect(resourcesTagged(resources, "dev.kiln.build", "r1").sort()).toEqual([ImageId, snapshotId, copy.ImageId, copySnapshot].sort());
  });
});

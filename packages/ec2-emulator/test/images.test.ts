import { DescribeImagesCommand } from "@aws-sdk/client-ec2";
import { describe, expect, it } from "vitest";
import { BASE_AMI_ID, BASE_AMI_NAME, DEBIAN_OWNER_ID } from "../src/index.js";
import { ec2Client, errorName, testEmulator } from "./helpers.js";

describe("DescribeImages", () => {
  it("finds the seeded Debian AMI by name pattern and owner, the way source_ami_filter does", async () => {
    await using emulator = await testEmulator();
    const client = ec2Client(emulator);
    const { Images } = await client.send(
      new DescribeImagesCommand({
        Owners: [DEBIAN_OWNER_ID],
        Filters: [
          { Name: "name", Values: ["debian-12-amd64-*"] },
          { Name: "architecture", Values: ["x86_64"] },
        ],
      }),
    );
    expect(Images).toHaveLength(1);
    const image = Images?.[0];
    expect(image).toMatchObject({
      ImageId: BASE_AMI_ID,
      Name: BASE_AMI_NAME,
      OwnerId: DEBIAN_OWNER_ID,
      State: "available",
      Public: true,
      RootDeviceType: "ebs",
    });
    expect(image?.CreationDate).toBe("2026-11-01T12:00:00.000Z");
    expect(image?.BlockDeviceMappings?.[0]?.Ebs?.SnapshotId).toMatch(/^snap-/);
  });

  it("returns nothing for another owner, self, or a name that does not match; NotFound for an unknown id", async () => {
    await using emulator = await testEmulator();
    const client = ec2Client(emulator);
    for (const input of [{ Owners: ["self"] }, { Owners: ["099720109477"] }, { Filters: [{ Name: "name", Values: ["ubuntu/*"] }] }]) {
      expect((await client.send(new DescribeImagesCommand(input))).Images).toEqual([]);
    }
    expect(await errorName(client.send(new DescribeImagesCommand({ ImageIds: ["ami-0000000000000000"] })))).toBe("InvalidAMIID.NotFound");
  });
});

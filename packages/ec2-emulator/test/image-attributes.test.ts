import {
  CreateImageCommand,
  DescribeImageAttributeCommand,
  DescribeImagesCommand,
  DisableImageDeprecationCommand,
  EnableImageDeprecationCommand,
  ModifyImageAttributeCommand,
  RunInstancesCommand,
} from "@aws-sdk/client-ec2";
import { describe, expect, it } from "vitest";
import { BASE_AMI_ID } from "../src/index.js";
import { ec2Client, errorName, testEmulator, waitForImage, waitForState } from "./helpers.js";

const ORGANIZATION = "arn:aws:organizations::111122223333:organization/o-abc123defg";
const UNIT = "arn:aws:organizations::111122223333:ou/o-abc123defg/ou-ab12-cd34ef56";

describe("image attributes", () => {
  it("shares an AMI with an organization and an organizational unit, and deprecates it", async () => {
    await using emulator = await testEmulator();
    const client = ec2Client(emulator);
    const run = await client.send(new RunInstancesCommand({ ImageId: BASE_AMI_ID, MinCount: 1, MaxCount: 1 }));
    const instanceId = run.Instances?.[0]?.InstanceId ?? "";
    await waitForState(client, instanceId, "running");
    const { ImageId = "" } = await client.send(new CreateImageCommand({ InstanceId: instanceId, Name: "kiln-shared" }));
    await waitForImage(client, ImageId);

    await client.send(
      new ModifyImageAttributeCommand({
        ImageId,
        LaunchPermission: { Add: [{ OrganizationArn: ORGANIZATION }, { OrganizationalUnitArn: UNIT }, { UserId: "210987654321" }] },
      }),
    );
    const launchPermissions = async () =>
      (await client.send(new DescribeImageAttributeCommand({ ImageId, Attribute: "launchPermission" }))).LaunchPermissions;
    expect(await launchPermissions()).toEqual([
      { UserId: "210987654321" },
      { OrganizationArn: ORGANIZATION },
      { OrganizationalUnitArn: UNIT },
    ]);
    await client.send(new ModifyImageAttributeCommand({ ImageId, LaunchPermission: { Remove: [{ OrganizationArn: ORGANIZATION }] } }));
    expect(await launchPermissions()).toEqual([{ UserId: "210987654321" }, { OrganizationalUnitArn: UNIT }]);
    expect(
      await errorName(
        client.send(new ModifyImageAttributeCommand({ ImageId, LaunchPermission: { Add: [{ OrganizationArn: "o-abc123defg" }] } })),
      ),
    ).toBe("InvalidParameterValue");

    // Seconds are rounded to the nearest minute, as EC2 does.
    const year = new Date().getUTCFullYear() + 1;
    await client.send(new EnableImageDeprecationCommand({ ImageId, DeprecateAt: new Date(Date.UTC(year, 0, 1, 10, 0, 29)) }));
    const describe = async () => (await client.send(new DescribeImagesCommand({ ImageIds: [ImageId] }))).Images?.[0];
    expect((await describe())?.DeprecationTime).toBe(`${year}-01-01T10:00:00.000Z`);
    expect(await errorName(client.send(new EnableImageDeprecationCommand({ ImageId, DeprecateAt: new Date(Date.now() - 60_000) })))).toBe(
      "InvalidParameterValue",
    );
    expect(
      await errorName(
        client.send(new EnableImageDeprecationCommand({ ImageId: BASE_AMI_ID, DeprecateAt: new Date(Date.UTC(year, 0, 1)) })),
      ),
    ).toBe("AuthFailure");
    await client.send(new DisableImageDeprecationCommand({ ImageId }));
    expect((await describe())?.DeprecationTime).toBeUndefined();
  });
});

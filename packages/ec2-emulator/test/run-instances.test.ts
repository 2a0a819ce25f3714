import {
  CreateSecurityGroupCommand,
  DescribeInstancesCommand,
  DescribeSecurityGroupsCommand,
  RunInstancesCommand,
  type RunInstancesCommandInput,
  StopInstancesCommand,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import { describe, expect, it } from "vitest";
import { ACCOUNT_ID, BASE_AMI_ID } from "../src/index.js";
import { ec2Client, errorName, testEmulator, waitForState } from "./helpers.js";

const launch = { ImageId: BASE_AMI_ID, MinCount: 1, MaxCount: 1 } satisfies RunInstancesCommandInput;

describe("RunInstances parameters", () => {
  it("takes the network-interface form (no public address when not asked for), the IAM profile, subnet and block devices", async () => {
    await using emulator = await testEmulator();
    const client = ec2Client(emulator);
    const { GroupId = "" } = await client.send(new CreateSecurityGroupCommand({ GroupName: "kiln-ssh", Description: "ssh" }));
    const run = await client.send(
      new RunInstancesCommand({
        ...launch,
        InstanceType: "t3.micro",
        NetworkInterfaces: [{ DeviceIndex: 0, SubnetId: "subnet-0123456789abcdef0", AssociatePublicIpAddress: false, Groups: [GroupId] }],
        IamInstanceProfile: { Name: "kiln-builder" },
        BlockDeviceMappings: [
          { DeviceName: "/dev/xvda", Ebs: { VolumeSize: 20, VolumeType: "gp3", DeleteOnTermination: true, Encrypted: true } },
          { DeviceName: "/dev/sdf", Ebs: { VolumeSize: 1, DeleteOnTermination: false } },
        ],
      }),
    );
    const instance = await waitForState(client, run.Instances?.[0]?.InstanceId ?? "", "running");
    expect(instance.PublicIpAddress).toBeUndefined();
    expect(instance.PublicDnsName).toBe("");
    expect(instance.PrivateIpAddress).toMatch(/^127\.0\.0\.\d+$/);
    expect(instance).toMatchObject({
      InstanceType: "t3.micro",
      SubnetId: "subnet-0123456789abcdef0",
      SecurityGroups: [{ GroupId, GroupName: "kiln-ssh" }],
    });
    expect(instance.IamInstanceProfile?.Arn).toBe(`arn:aws:iam::${ACCOUNT_ID}:instance-profile/kiln-builder`);
    expect(instance.IamInstanceProfile?.Id).toMatch(/^AIPA[0-9A-F]{17}$/);
    expect(instance.BlockDeviceMappings).toMatchObject([
      {
        DeviceName: "/dev/xvda",
        Ebs: { Status: "attached", DeleteOnTermination: true, VolumeId: expect.stringMatching(/^vol-[0-9a-f]{17}$/) },
      },
      { DeviceName: "/dev/sdf", Ebs: { Status: "attached", DeleteOnTermination: false } },
    ]);
    const byPublicIp = await client.send(
      new DescribeInstancesCommand({ Filters: [{ Name: "ip-address", Values: [instance.PrivateIpAddress ?? ""] }] }),
    );
    expect(byPublicIp.Reservations).toEqual([]);

    // The instance-level form, with an IAM profile ARN, keeps the public address.
    const arn = `arn:aws:iam::${ACCOUNT_ID}:instance-profile/path/kiln`;
    const plain = await client.send(
      new RunInstancesCommand({ ...launch, SubnetId: "subnet-0aaa", SecurityGroupIds: [GroupId], IamInstanceProfile: { Arn: arn } }),
    );
    const plainInstance = await waitForState(client, plain.Instances?.[0]?.InstanceId ?? "", "running");
    expect(plainInstance).toMatchObject({ SubnetId: "subnet-0aaa", IamInstanceProfile: { Arn: arn } });
    expect(plainInstance.PublicIpAddress).toBe(plainInstance.PrivateIpAddress);
    expect(plainInstance.BlockDeviceMappings?.map((mapping) => mapping.DeviceName)).toEqual(["/dev/xvda"]);
  });

  it("takes empty optional parameters as not given, as EC2 does (Packer sends SubnetId=, IamInstanceProfile.Name=, VpcId=)", async () => {
    await using emulator = await testEmulator();
    const client = ec2Client(emulator);
    const { GroupId = "" } = await client.send(
      new CreateSecurityGroupCommand({ GroupName: "packer", Description: "Temporary group for Packer", VpcId: "" }),
    );
    const groups = await client.send(new DescribeSecurityGroupsCommand({ GroupIds: [GroupId] }));
    expect(groups.SecurityGroups?.[0]?.VpcId).toBe("vpc-0kiln00000000000");
    const run = await client.send(
      new RunInstancesCommand({
        ...launch,
        InstanceType: "t3.micro",
        SubnetId: "",
        SecurityGroupIds: [GroupId],
        IamInstanceProfile: { Name: "" },
        Placement: { AvailabilityZone: "" },
        UserData: "",
      }),
    );
    const instance = await waitForState(client, run.Instances?.[0]?.InstanceId ?? "", "running");
    expect(instance.SubnetId).toBe("subnet-0kiln0000000000");
    expect(instance.IamInstanceProfile).toBeUndefined();
    expect(instance.PublicIpAddress).toMatch(/^127\.0\.0\.\d+$/);
  });

  it("refuses what EC2 refuses, launching nothing", async () => {
    await using emulator = await testEmulator();
    const client = ec2Client(emulator);
    const { GroupId = "" } = await client.send(new CreateSecurityGroupCommand({ GroupName: "g", Description: "g" }));
    const refused: Array<[RunInstancesCommandInput, string]> = [
      [{ ...launch, InstanceType: "large" as "t3.large" }, "InvalidParameterValue"],
      [{ ...launch, BlockDeviceMappings: [{ DeviceName: "/dev/xvda", Ebs: { VolumeSize: 4 } }] }, "InvalidBlockDeviceMapping"],
      [{ ...launch, BlockDeviceMappings: [{ DeviceName: "/dev/xvda", Ebs: { VolumeType: "gp9" as "gp3" } }] }, "InvalidParameterValue"],
      [{ ...launch, BlockDeviceMappings: [{ DeviceName: "/dev/xvda", Ebs: { KmsKeyId: "alias/mine" } }] }, "InvalidParameterDependency"],
      [
        { ...launch, SecurityGroupIds: [GroupId], NetworkInterfaces: [{ DeviceIndex: 0, Groups: [GroupId] }] },
        "InvalidParameterCombination",
      ],
      [{ ...launch, SubnetId: "subnet-0aaa", NetworkInterfaces: [{ DeviceIndex: 0 }] }, "InvalidParameterCombination"],
      [{ ...launch, NetworkInterfaces: [{ DeviceIndex: 0, Groups: ["sg-0123456789abcdef0"] }] }, "InvalidGroup.NotFound"],
      [{ ...launch, NetworkInterfaces: [{ DeviceIndex: 1 }] }, "InvalidParameterValue"],
      [{ ...launch, IamInstanceProfile: { Arn: "kiln-builder" } }, "InvalidParameterValue"],
    ];
    for (const [input, code] of refused)
      expect([input, await errorName(client.send(new RunInstancesCommand(input)))]).toEqual([input, code]);
    expect(emulator.resources().instances).toEqual([]);
  });

  it("answers a repeated ClientToken with the reservation it launched, and a changed request with IdempotentParameterMismatch", async () => {
    await using emulator = await testEmulator();
    const client = ec2Client(emulator);
    const first = await client.send(new RunInstancesCommand({ ...launch, ClientToken: "kiln-token-1" }));
    const second = await client.send(new RunInstancesCommand({ ...launch, ClientToken: "kiln-token-1" }));
    expect(second.ReservationId).toBe(first.ReservationId);
    expect(second.Instances?.map((i) => i.InstanceId)).toEqual(first.Instances?.map((i) => i.InstanceId));
    expect(emulator.resources().instances).toHaveLength(1);
    const instance = await waitForState(client, first.Instances?.[0]?.InstanceId ?? "", "running");
    expect(instance.ClientToken).toBe("kiln-token-1");
    expect(
      await errorName(client.send(new RunInstancesCommand({ ...launch, InstanceType: "t3.small", ClientToken: "kiln-token-1" }))),
    ).toBe("IdempotentParameterMismatch");
  });

  it("takes per-transition delays over transitionDelayMs", async () => {
    await using emulator = await testEmulator({ transitionDelayMs: 6000, transitionDelays: { boot: 0, terminate: 0 } });
    const client = ec2Client(emulator);
    const run = await client.send(new RunInstancesCommand(launch));
    const instanceId = run.Instances?.[0]?.InstanceId ?? "";
    await waitForState(client, instanceId, "running", 4000);
    await client.send(new StopInstancesCommand({ InstanceIds: [instanceId] }));
    await new Promise((resolve) => setTimeout(resolve, 1000));
    // `stop` was not overridden, so the instance is still stopping (6 s); terminating from there is quick.
    await waitForState(client, instanceId, "stopping", 1000);
    await client.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }));
    await waitForState(client, instanceId, "terminated", 4000);
  });
});

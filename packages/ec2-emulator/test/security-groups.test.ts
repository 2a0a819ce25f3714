import {
  AuthorizeSecurityGroupIngressCommand,
  CreateSecurityGroupCommand,
  DeleteSecurityGroupCommand,
  DescribeSecurityGroupsCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import { describe, expect, it } from "vitest";
import { BASE_AMI_ID } from "../src/index.js";
import { ec2Client, errorName, shell, testEmulator, waitForState } from "./helpers.js";

describe("security groups", () => {
  it("creates, authorizes SSH, describes, refuses deletion while an instance uses it, then deletes", async () => {
    await using emulator = await testEmulator();
    const client = ec2Client(emulator);
    const { GroupId } = await client.send(
      new CreateSecurityGroupCommand({ GroupName: "kiln-ssh", Description: "Kiln temporary SSH access" }),
    );
    expect(GroupId).toMatch(/^sg-/);
    expect(await errorName(client.send(new CreateSecurityGroupCommand({ GroupName: "kiln-ssh", Description: "again" })))).toBe(
      "InvalidGroup.Duplicate",
    );
    await client.send(
      new AuthorizeSecurityGroupIngressCommand({
        GroupId,
        IpPermissions: [{ IpProtocol: "tcp", FromPort: 22, ToPort: 22, IpRanges: [{ CidrIp: "127.0.0.1/32" }] }],
      }),
    );

    const { SecurityGroups } = await client.send(new DescribeSecurityGroupsCommand({ GroupIds: [GroupId ?? ""] }));
    expect(SecurityGroups?.[0]).toMatchObject({
      GroupName: "kiln-ssh",
      Description: "Kiln temporary SSH access",
      IpPermissions: [{ IpProtocol: "tcp", FromPort: 22, ToPort: 22, IpRanges: [{ CidrIp: "127.0.0.1/32" }] }],
    });

    const run = await client.send(
      new RunInstancesCommand({
        ImageId: BASE_AMI_ID,
        InstanceType: "t3.micro",
        MinCount: 1,
        MaxCount: 1,
        SecurityGroupIds: [GroupId ?? ""],
      }),
    );
    const instanceId = run.Instances?.[0]?.InstanceId ?? "";
    expect(await errorName(client.send(new DeleteSecurityGroupCommand({ GroupId })))).toBe("DependencyViolation");
    await client.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }));
    // Like EC2, the group stays in use until the instance is fully terminated.
    await waitForState(client, instanceId, "terminated");
    await client.send(new DeleteSecurityGroupCommand({ GroupId }));
    expect(await errorName(client.send(new DescribeSecurityGroupsCommand({ GroupIds: [GroupId ?? ""] })))).toBe("InvalidGroup.NotFound");
    expect(emulator.resources().securityGroups).toEqual([]);
  });

  it("publishes the TCP ports its groups open at launch on the instance's address, and no others", async () => {
    await using emulator = await testEmulator();
    const client = ec2Client(emulator);
    const { GroupId } = await client.send(new CreateSecurityGroupCommand({ GroupName: "kiln-web", Description: "web" }));
    await client.send(
      new AuthorizeSecurityGroupIngressCommand({
        GroupId,
        IpPermissions: [{ IpProtocol: "tcp", FromPort: 8080, ToPort: 8080, IpRanges: [{ CidrIp: "127.0.0.1/32" }] }],
      }),
    );
    const run = await client.send(
      new RunInstancesCommand({ ImageId: BASE_AMI_ID, MinCount: 1, MaxCount: 1, SecurityGroupIds: [GroupId as string] }),
    );
    const instanceId = run.Instances?.[0]?.InstanceId ?? "";
    const address = (await waitForState(client, instanceId, "running")).PublicIpAddress;
    // setsid: the servers must outlive the exec session that starts them — and the session waits until both listen (a
    // server still starting when the session's terminal hangs up gets its SIGHUP).
    const serve = (port: number) => `setsid -f python3 -m http.server ${port} --directory /srv </dev/null >/dev/null 2>&1`;
    const listening = "for i in $(seq 600); do [ $(grep -c ':1F9[01] 00000000:0000 0A' /proc/net/tcp) -eq 2 ] && break; sleep 0.1; done";
    await shell(emulator, instanceId, `mkdir -p /srv && echo open > /srv/index.html && ${serve(8080)} && ${serve(8081)}; ${listening}`);
    const get = (port: number) =>
      fetch(`http://${address}:${port}/`, { signal: AbortSignal.timeout(2000) }).then(
        (response) => response.text(),
        () => "unreachable",
      );
    await expect.poll(() => get(8080), { timeout: 20_000 }).toBe("open\n");
    expect(await get(8081)).toBe("unreachable");
    await client.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }));
  });
});

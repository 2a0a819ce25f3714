import { CreateSecurityGroupCommand, CreateTagsCommand, DescribeTagsCommand } from "@aws-sdk/client-ec2";
import { describe, expect, it } from "vitest";
import { ec2Client, errorName, testEmulator } from "./helpers.js";

describe("tags", () => {
  it("tags resources with CreateTags and lists them with DescribeTags", async () => {
    await using emulator = await testEmulator();
    const client = ec2Client(emulator);
    const { GroupId = "" } = await client.send(new CreateSecurityGroupCommand({ GroupName: "tagged", Description: "tagged" }));
    await client.send(new CreateTagsCommand({ Resources: [GroupId], Tags: [{ Key: "dev.kiln.build", Value: "run-1" }] }));
    const { Tags } = await client.send(new DescribeTagsCommand({ Filters: [{ Name: "resource-id", Values: [GroupId] }] }));
    expect(Tags).toEqual([{ ResourceId: GroupId, ResourceType: "security-group", Key: "dev.kiln.build", Value: "run-1" }]);
    expect(await errorName(client.send(new CreateTagsCommand({ Resources: ["sg-nope"], Tags: [{ Key: "a", Value: "b" }] })))).toBe("InvalidID");
  });
});

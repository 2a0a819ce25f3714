import { CreateKeyPairCommand, CreateSecurityGroupCommand, CreateTagsCommand, DescribeTagsCommand, type Tag } from "@aws-sdk/client-ec2";
import { describe, expect, it } from "vitest";
import { type EmulatorResources, resourcesTagged } from "../src/index.js";
import { ec2Client, errorName, testEmulator } from "./helpers.js";

const numbered = (count: number, from = 0): Tag[] => Array.from({ length: count }, (_, i) => ({ Key: `k${from + i}`, Value: "v" }));

describe("tags", () => {
  it("tags resources with CreateTags and lists them with DescribeTags", async () => {
    await using emulator = await testEmulator();
    const client = ec2Client(emulator);
    const { GroupId = "" } = await client.send(new CreateSecurityGroupCommand({ GroupName: "tagged", Description: "tagged" }));
    await client.send(new CreateTagsCommand({ Resources: [GroupId], Tags: [{ Key: "dev.kiln.build", Value: "run-1" }] }));
    const { Tags } = await client.send(new DescribeTagsCommand({ Filters: [{ Name: "resource-id", Values: [GroupId] }] }));
    expect(Tags).toEqual([{ ResourceId: GroupId, ResourceType: "security-group", Key: "dev.kiln.build", Value: "run-1" }]);
    expect(await errorName(client.send(new CreateTagsCommand({ Resources: ["sg-nope"], Tags: [{ Key: "a", Value: "b" }] })))).toBe(
      "InvalidID",
    );
  });

  it("refuses what EC2 refuses: aws: keys, empty or long keys, long values, more than 50 tags on a resource", async () => {
    await using emulator = await testEmulator();
    const client = ec2Client(emulator);
    const { GroupId = "" } = await client.send(new CreateSecurityGroupCommand({ GroupName: "limits", Description: "limits" }));
    const tag = async (tags: Tag[]) => errorName(client.send(new CreateTagsCommand({ Resources: [GroupId], Tags: tags })));
    expect(await tag([{ Key: "aws:cloudformation:stack-name", Value: "x" }])).toBe("InvalidParameterValue");
    expect(await tag([{ Key: "AWS:x", Value: "x" }])).toBe("InvalidParameterValue");
    expect(await tag([{ Key: "", Value: "x" }])).toBe("InvalidParameterValue");
    expect(await tag([{ Key: "k".repeat(129), Value: "x" }])).toBe("InvalidParameterValue");
    expect(await tag([{ Key: "k", Value: "v".repeat(257) }])).toBe("InvalidParameterValue");
    // Limits count characters: 128 two-byte characters are a valid key.
    await client.send(
      new CreateTagsCommand({ Resources: [GroupId], Tags: [{ Key: "é".repeat(128), Value: "v".repeat(256) }, ...numbered(48)] }),
    );
    await client.send(new CreateTagsCommand({ Resources: [GroupId], Tags: numbered(1, 48) }));
    expect(await tag(numbered(1, 49))).toBe("TagLimitExceeded");
    // Overwriting an existing key does not add a tag.
    await client.send(new CreateTagsCommand({ Resources: [GroupId], Tags: [{ Key: "k0", Value: "new" }] }));
    const tagSpecification = (tags: Tag[]) => [{ ResourceType: "security-group" as const, Tags: tags }];
    expect(
      await errorName(
        client.send(
          new CreateSecurityGroupCommand({ GroupName: "many", Description: "x", TagSpecifications: tagSpecification(numbered(51)) }),
        ),
      ),
    ).toBe("TagLimitExceeded");
    expect(
      await errorName(
        client.send(
          new CreateKeyPairCommand({
            KeyName: "k",
            TagSpecifications: [{ ResourceType: "key-pair", Tags: [{ Key: "aws:x", Value: "y" }] }],
          }),
        ),
      ),
    ).toBe("InvalidParameterValue");
    expect(emulator.resources().keyPairs).toEqual([]);
  });

  it("lists every live resource with its tags (also over HTTP); resourcesTagged picks a run's", async () => {
    await using emulator = await testEmulator();
    const client = ec2Client(emulator);
    const run = (id: string) => [{ Key: "dev.kiln.build", Value: id }];
    const { KeyPairId = "" } = await client.send(
      new CreateKeyPairCommand({ KeyName: "k", TagSpecifications: [{ ResourceType: "key-pair", Tags: run("a") }] }),
    );
    const { GroupId: groupA = "" } = await client.send(
      new CreateSecurityGroupCommand({
        GroupName: "a",
        Description: "a",
        TagSpecifications: [{ ResourceType: "security-group", Tags: run("a") }],
      }),
    );
    const { GroupId: groupB = "" } = await client.send(new CreateSecurityGroupCommand({ GroupName: "b", Description: "b" }));
    await client.send(new CreateTagsCommand({ Resources: [groupB], Tags: [...run("b"), { Key: "Name", Value: "b" }] }));
    const listed = (await (await fetch(`${emulator.endpoint}/_kiln/resources`)).json()) as EmulatorResources;
    expect(listed.securityGroups).toEqual([
      { groupId: groupA, groupName: "a", tags: { "dev.kiln.build": "a" } },
      { groupId: groupB, groupName: "b", tags: { "dev.kiln.build": "b", Name: "b" } },
    ]);
    expect(resourcesTagged(listed, "dev.kiln.build", "a")).toEqual([KeyPairId, groupA]);
    expect(resourcesTagged(emulator.resources(), "dev.kiln.build")).toEqual([KeyPairId, groupA, groupB]);
    expect(resourcesTagged(emulator.resources(), "Name", "a")).toEqual([]);
  });
});

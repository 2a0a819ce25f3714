import { DescribeRegionsCommand } from "@aws-sdk/client-ec2";
import { describe, expect, it } from "vitest";
import { ec2Client, errorName, testEmulator } from "./helpers.js";

describe("DescribeRegions", () => {
  it("lists the enabled regions, opt-in ones with AllRegions, by name and by filter", async () => {
    await using emulator = await testEmulator();
    const client = ec2Client(emulator, { region: "eu-west-1" });
    const { Regions = [] } = await client.send(new DescribeRegionsCommand({}));
    expect(Regions).toContainEqual({
      RegionName: "us-east-1",
      Endpoint: "ec2.us-east-1.amazonaws.com",
      OptInStatus: "opt-in-not-required",
    });
    expect(Regions.map((r) => r.RegionName)).toContain("eu-west-1");
    expect(Regions.map((r) => r.RegionName)).not.toContain("af-south-1");

    const all = await client.send(new DescribeRegionsCommand({ AllRegions: true }));
    expect(all.Regions).toContainEqual({ RegionName: "af-south-1", Endpoint: "ec2.af-south-1.amazonaws.com", OptInStatus: "not-opted-in" });
    const named = await client.send(new DescribeRegionsCommand({ RegionNames: ["us-west-2", "af-south-1"] }));
    expect(named.Regions?.map((r) => r.RegionName)).toEqual(["af-south-1", "us-west-2"]);
    const filtered = await client.send(new DescribeRegionsCommand({ Filters: [{ Name: "region-name", Values: ["us-*"] }] }));
    expect(filtered.Regions?.map((r) => r.RegionName)).toEqual(["us-east-1", "us-east-2", "us-west-1", "us-west-2"]);
    expect(await errorName(client.send(new DescribeRegionsCommand({ RegionNames: ["mars-north-1"] })))).toBe("InvalidParameterValue");
  });
});

import { describe, expect, it } from "vitest";
import { matchesFilters, QueryParams } from "./query.js";
import { errorXml, escapeXml, fields, set } from "./xml.js";

describe("QueryParams", () => {
  const params = QueryParams.parse(
    "Action=RunInstances&InstanceId.2=i-b&InstanceId.1=i-a&Filter.1.Name=tag%3AName&Filter.1.Value.1=web*&Filter.1.Value.2=db" +
      "&TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.1.Key=Name&TagSpecification.1.Tag.1.Value=web-1" +
      "&TagSpecification.2.ResourceType=volume&TagSpecification.2.Tag.1.Key=Vol&TagSpecification.2.Tag.1.Value=x",
  );

  it("reads numbered lists in index order, filters and tag specifications per resource type", () => {
    expect(params.list("InstanceId")).toEqual(["i-a", "i-b"]);
    expect(params.filters()).toEqual([{ name: "tag:Name", values: ["web*", "db"] }]);
    expect(params.tagSpecifications("instance")).toEqual({ Name: "web-1" });
    expect(params.require("Action")).toBe("RunInstances");
    expect(() => params.require("ImageId")).toThrow(/ImageId/);
  });

  it("matches filters as globs, ANDed across filters and ORed across values", () => {
    const values = (name: string) => ({ "instance-state-name": ["running"] })[name];
    expect(matchesFilters(params.filters(), { Name: "web-1" }, values)).toBe(true);
    expect(matchesFilters(params.filters(), { Name: "cache" }, values)).toBe(false);
    expect(matchesFilters([{ name: "instance-state-name", values: ["pend?ng", "running"] }], {}, values)).toBe(true);
    expect(() => matchesFilters([{ name: "nonsense", values: ["x"] }], {}, values)).toThrow(/nonsense/);
  });
});

describe("xml", () => {
  it("escapes text and renders EC2's item lists and error envelope", () => {
    expect(escapeXml(`<a href="x">&'`)).toBe("&lt;a href=&quot;x&quot;&gt;&amp;&apos;");
    expect(fields({ keySet: set([{ keyName: "a&b", skipped: undefined }]) })).toBe(
      "<keySet><item><keyName>a&amp;b</keyName></item></keySet>",
    );
    expect(errorXml("X.Y", "m<", "id")).toContain(
      "<Response><Errors><Error><Code>X.Y</Code><Message>m&lt;</Message></Error></Errors><RequestID>id</RequestID></Response>",
    );
  });
});

import { describe, expect, it } from "vitest";
import { z } from "zod";
import type { StandardSchemaV1 } from "../types.js";
import { bakeFileJsonSchema } from "./json-schema.js";

type Schema = { properties?: Record<string, Schema>; additionalProperties?: Schema; items?: Schema; [key: string]: unknown };

const dockerOptions = z.strictObject({ source: z.string().optional(), privileged: z.boolean().optional() });

function imageSchema(root: Record<string, unknown>): Schema {
  const images = (root as Schema).properties?.images;
  if (!images?.additionalProperties) throw new Error("no image schema under properties.images.additionalProperties");
  return images.additionalProperties;
}

function driverRule(root: Record<string, unknown>, driver: string): Schema | undefined {
  const rules = (imageSchema(root).allOf ?? []) as { if: Schema; then: Schema }[];
  return rules.find((rule) => rule.if.properties?.driver?.const === driver)?.then;
}

describe("bakeFileJsonSchema", () => {
  it("describes images and variables", () => {
    const schema = bakeFileJsonSchema() as Schema;
    expect(schema.properties).toHaveProperty("images");
    expect(schema.properties).toHaveProperty("variables");
    expect(schema.title).toBe("Kiln bake file");
  });

  it("lists Kiln's own image keys", () => {
    const image = imageSchema(bakeFileJsonSchema());
    expect(Object.keys(image.properties ?? {})).toEqual(
      expect.arrayContaining(["driver", "from", "provision", "verify", "tags", "labels", "timeout"]),
    );
  });

  it("includes a driver's options for images using that driver", () => {
    const rule = driverRule(bakeFileJsonSchema({ drivers: { docker: dockerOptions } }), "docker");
    expect(rule?.properties).toHaveProperty("privileged");
    expect(rule?.properties).toHaveProperty("driver");
    expect(rule?.additionalProperties).toBe(false);
  });

  it("does not mention driver options when no driver is given", () => {
    expect(JSON.stringify(bakeFileJsonSchema())).not.toContain("privileged");
  });

  it("does not require source, since an image may use from: instead", () => {
    const required = z.strictObject({ source: z.string(), privileged: z.boolean() });
    const rule = driverRule(bakeFileJsonSchema({ drivers: { docker: required } }), "docker");
    expect(rule?.required).toEqual(expect.arrayContaining(["driver", "privileged"]));
    expect(rule?.required).not.toContain("source");
  });

  it("offers a provisioner's options, together with Kiln's step keys", () => {
    const schema = bakeFileJsonSchema({ provisioners: { shell: z.strictObject({ inline: z.array(z.string()) }) } });
    const variants = (imageSchema(schema).properties?.provision?.items?.anyOf ?? []) as Schema[];
    const shell = variants.find((variant) => variant.properties?.shell)?.properties?.shell;
    expect(Object.keys(shell?.properties ?? {})).toEqual(expect.arrayContaining(["inline", "timeout", "pause_before", "max_retries"]));
  });

  it("skips a plugin whose schema cannot describe itself", () => {
    const opaque: StandardSchemaV1 = { "~standard": { version: 1, vendor: "test", validate: (value) => ({ value }) } };
    const schema = bakeFileJsonSchema({ drivers: { opaque } });
    expect(driverRule(schema, "opaque")).toBeUndefined();
  });
});

import { z } from "zod";
import type { StandardSchemaV1 } from "@standard-schema/spec";
import { bakeFileSchema, commonStepSchema } from "./schema.js";

type JsonSchema = Record<string, unknown> & { properties?: Record<string, JsonSchema>; required?: string[] };

/** A schema that can describe itself as JSON Schema (Standard JSON Schema, which zod 4 and others implement). */
type Describable = StandardSchemaV1 & {
  "~standard": { jsonSchema?: { input(options: { target: string }): Record<string, unknown> } };
};

export interface JsonSchemaPlugins {
  drivers?: Record<string, StandardSchemaV1>;
  provisioners?: Record<string, StandardSchemaV1>;
}

/**
 * JSON Schema of the bake file, for editor completion. Generated from the same zod schema that validates bake files, with each
 * given plugin's options schema merged in where the plugin's schema can describe itself.
 */
export function bakeFileJsonSchema(plugins: JsonSchemaPlugins = {}): Record<string, unknown> {
  const root = z.toJSONSchema(bakeFileSchema, { io: "input", unrepresentable: "any" }) as JsonSchema;
  const images = root.properties?.images as JsonSchema & { additionalProperties: JsonSchema };
  const image = images.additionalProperties;
  const provision = image.properties?.provision as JsonSchema & { items: JsonSchema };
  const common = (z.toJSONSchema(commonStepSchema, { io: "input" }) as JsonSchema).properties ?? {};

  const stepVariants = Object.entries(plugins.provisioners ?? {}).flatMap(([name, schema]) => {
    const options = describe(schema);
    if (!options) return [];
    const withCommon = { ...options, properties: { ...common, ...options.properties } };
    return [{ type: "object", properties: { [name]: withCommon }, required: [name], additionalProperties: false }];
  });
  if (stepVariants.length > 0) provision.items = { anyOf: [...stepVariants, provision.items] };

  const driverRules = Object.entries(plugins.drivers ?? {}).flatMap(([name, schema]) => {
    const options = describe(schema);
    if (!options) return [];
    return [
      {
        if: { properties: { driver: { const: name } }, required: ["driver"] },
        // biome-ignore lint/suspicious/noThenProperty: `then` is the JSON Schema keyword, not a thenable.
        then: {
          properties: { ...image.properties, ...options.properties },
          required: [...new Set([...(image.required ?? []), ...(options.required ?? []).filter((key) => key !== "source")])],
          additionalProperties: false,
        },
      },
    ];
  });
  if (driverRules.length > 0) image.allOf = driverRules;
  return { $id: "https://kiln.dev/schema/kiln.schema.json", title: "Kiln bake file", ...root };
}

function describe(schema: StandardSchemaV1): JsonSchema | undefined {
  const jsonSchema = (schema as Describable)["~standard"].jsonSchema;
  if (!jsonSchema) return undefined;
  try {
    const { $schema: _ignored, ...rest } = jsonSchema.input({ target: "draft-2020-12" });
    return rest as JsonSchema;
  } catch {
    return undefined;
  }
}

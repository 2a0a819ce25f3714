import { z } from "zod";
import type { StandardSchemaV1 } from "@standard-schema/spec";
import { bakeFileSchema, commonStepSchema } from "./schema.js";

type JsonSchema = Record<string, unknown> & { properties?: Record<string, JsonSchema>; required?: string[] };

/**
 * A schema that can describe itself as JSON Schema: Standard JSON Schema (zod 4.2+, and others), or a `toJSONSchema()` /
 * `toJsonSchema()` method (older zod 4, ArkType).
 */
type Describable = StandardSchemaV1 & {
  "~standard": {
    jsonSchema?: { input(options: { target: string; libraryOptions?: Record<string, unknown> }): Record<string, unknown> };
  };
  toJSONSchema?: (options?: Record<string, unknown>) => Record<string, unknown>;
  toJsonSchema?: () => Record<string, unknown>;
};

/** A plugin's options schema, with a line saying where the plugin comes from (shown on hover in an editor). */
export interface JsonSchemaPlugin {
  schema: StandardSchemaV1;
  description?: string;
}

export interface JsonSchemaPlugins {
  drivers?: Record<string, StandardSchemaV1 | JsonSchemaPlugin>;
  provisioners?: Record<string, StandardSchemaV1 | JsonSchemaPlugin>;
  /** Told about a plugin left out because its schema cannot describe itself as JSON Schema. */
  warn?: (message: string) => void;
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
  const optionsOf = (kind: "driver" | "provisioner", name: string, given: StandardSchemaV1 | JsonSchemaPlugin) => {
    const { schema, description } = "~standard" in given ? { schema: given, description: undefined } : given;
    const options = describe(schema);
    if (!options)
      plugins.warn?.(
        `${kind} "${name}": its options schema cannot describe itself as JSON Schema, so editors get no completion for its options`,
      );
    return options && { options, description };
  };

  const stepVariants = Object.entries(plugins.provisioners ?? {}).flatMap(([name, given]) => {
    const found = optionsOf("provisioner", name, given);
    if (!found) return [];
    const { options, description } = found;
    const said = [options.description, description].filter(Boolean).join("\n\n");
    const withCommon = { ...options, ...(said ? { description: said } : {}), properties: { ...common, ...options.properties } };
    return [{ type: "object", properties: { [name]: withCommon }, required: [name], additionalProperties: false }];
  });
  if (stepVariants.length > 0) provision.items = { anyOf: [...stepVariants, provision.items] };

  const driverNames = Object.keys(plugins.drivers ?? {});
  const driver = image.properties?.driver;
  // Offered as completions; any other name stays valid (a plugin of the project, one installed later).
  if (driver && driverNames.length > 0) driver.examples = driverNames;
  const driverRules = Object.entries(plugins.drivers ?? {}).flatMap(([name, given]) => {
    const found = optionsOf("driver", name, given);
    if (!found) return [];
    const { options, description } = found;
    return [
      {
        if: { properties: { driver: { const: name } }, required: ["driver"] },
        ...(description ? { description } : {}),
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

/** The plugin's options as JSON Schema (what a bake file writes: the input side), or undefined when the schema cannot say. */
function describe(schema: StandardSchemaV1): JsonSchema | undefined {
  const describable = schema as Describable;
  const standard = describable["~standard"];
  // zod throws on what JSON Schema cannot express (a custom check) unless told to leave it open.
  const libraryOptions = standard.vendor === "zod" ? { unrepresentable: "any" } : undefined;
  const attempts = [
    () => standard.jsonSchema?.input({ target: "draft-2020-12", ...(libraryOptions ? { libraryOptions } : {}) }),
    () => describable.toJSONSchema?.({ io: "input", unrepresentable: "any" }),
    () => describable.toJsonSchema?.(),
  ];
  for (const attempt of attempts) {
    try {
      const found = attempt();
      if (typeof found !== "object" || found === null) continue;
      const { $schema: _ignored, ...rest } = found;
      return rest as JsonSchema;
    } catch {
      // Try the next way; a schema none of them can express is left out.
    }
  }
  return undefined;
}

import { readFile } from "node:fs/promises";
import { Ajv2020 } from "ajv/dist/2020.js";
import { describe, expect, it } from "vitest";
import type { Diagnostic } from "../src/errors.js";
import type { KilnEvent, StepName, StepTiming } from "../src/events.js";
import type { Artifact, ArtifactFile } from "../src/types.js";

// events.schema.json is written by hand for consumers of `--json`. These lists are checked against the `KilnEvent` union by the
// compiler (`satisfies`: a missing, extra or differently-optional field fails `tsc`), and against the schema below, so
// the two cannot drift apart silently.

/** For each field: whether the type requires it. */
type Presence<T> = { [K in keyof T]-?: Record<never, never> extends Pick<T, K> ? "optional" : "required" };
type EventOf<Type extends KilnEvent["type"]> = Extract<KilnEvent, { type: Type }>;

const EVENT_FIELDS = {
  "run.start": { type: "required", runId: "required", images: "required", time: "required" },
  "run.end": { type: "required", runId: "required", ok: "required", durationMs: "required", interrupted: "required", time: "required" },
  "image.start": { type: "required", image: "required", driver: "required", bakeKey: "required", parent: "optional", time: "required" },
  "image.done": {
    type: "required",
    image: "required",
    artifact: "required",
    bakeKey: "required",
    durationMs: "required",
    steps: "required",
    time: "required",
  },
  "image.cached": {
    type: "required",
    image: "required",
    artifact: "required",
    bakeKey: "required",
    durationMs: "required",
    steps: "required",
    time: "required",
  },
  "image.failed": { type: "required", image: "required", error: "required", durationMs: "required", time: "required" },
  "image.skipped": { type: "required", image: "required", reason: "required", time: "required" },
  "step.start": { type: "required", image: "required", step: "required", detail: "optional", time: "required" },
  "step.end": { type: "required", image: "required", step: "required", detail: "optional", durationMs: "required", time: "required" },
  "step.retry": {
    type: "required",
    image: "required",
    step: "required",
    attempt: "required",
    error: "required",
    delayMs: "required",
    time: "required",
  },
  output: { type: "required", image: "required", stream: "required", line: "required", time: "required" },
  "verify.check": {
    type: "required",
    image: "required",
    scenario: "required",
    check: "required",
    kind: "required",
    ok: "required",
    expected: "optional",
    actual: "optional",
    attempts: "required",
    durationMs: "required",
    time: "required",
  },
  log: { type: "required", image: "optional", level: "required", message: "required", time: "required" },
  "cleanup.failed": {
    type: "required",
    image: "optional",
    resource: "required",
    error: "required",
    manualCommand: "optional",
    time: "required",
  },
  "abort.kept": {
    type: "required",
    image: "required",
    machine: "required",
    attachCommand: "required",
    kept: "required",
    time: "required",
  },
  signal: { type: "required", signal: "required", force: "required", time: "required" },
} as const satisfies { [Type in KilnEvent["type"]]: Presence<EventOf<Type>> };

/** The objects events carry, each against its `$defs` entry. */
const NESTED_FIELDS = {
  artifact: {
    id: "required",
    driver: "required",
    image: "required",
    tags: "required",
    labels: "required",
    created: "optional",
    files: "optional",
    digests: "optional",
  } satisfies Presence<Artifact>,
  artifactFile: { path: "required", format: "required", size: "required", sha256: "required" } satisfies Presence<ArtifactFile>,
  stepTiming: { step: "required", detail: "optional", durationMs: "required" } satisfies Presence<StepTiming>,
  diagnostic: {
    path: "required",
    message: "required",
    hint: "optional",
    file: "optional",
    line: "optional",
    column: "optional",
  } satisfies Presence<Diagnostic>,
};

const IMAGE_FAILED_ERROR = { code: "required", message: "required", hint: "optional" } satisfies Presence<EventOf<"image.failed">["error"]>;
const ABORT_KEPT_ITEM = { resource: "required", manualCommand: "optional" } satisfies Presence<EventOf<"abort.kept">["kept"][number]>;

/** Enums in lifecycle order. */
const STEP_NAMES = {
  resolve: true,
  launch: true,
  provision: true,
  "runtime-only": true,
  capture: true,
  verify: true,
  tag: true,
  publish: true,
} satisfies Record<StepName, true>;
const OUTPUT_STREAMS = { stdout: true, stderr: true } satisfies Record<EventOf<"output">["stream"], true>;
const LOG_LEVELS = { info: true, warn: true, debug: true } satisfies Record<EventOf<"log">["level"], true>;

/** Lines the CLI writes besides events (apps/cli/src/render/json.ts); apps/cli/test/events.test.ts checks them on real runs. */
const CLI_LINES = ["error", "verify.result"];

interface ObjectSchema {
  required?: string[];
  properties?: Record<string, { const?: unknown; enum?: unknown[]; $ref?: string }>;
  additionalProperties?: unknown;
}
interface EventsSchema extends ObjectSchema {
  allOf: { if: { properties: { type: { const: string } } }; then: { $ref: string } }[];
  $defs: Record<string, ObjectSchema & { enum?: unknown[] }>;
}

const schemaUrl = new URL("../events.schema.json", import.meta.url);
const loadSchema = async (): Promise<EventsSchema> => JSON.parse(await readFile(schemaUrl, "utf8"));

/** The schema's per-type definitions, by the `type` const that selects each. */
function lineDefinitions(schema: EventsSchema): Map<string, ObjectSchema> {
  return new Map(
    schema.allOf.map((branch) => {
      const definition = schema.$defs[branch.then.$ref.replace("#/$defs/", "")];
      if (!definition) throw new Error(`${branch.then.$ref} is not defined`);
      return [branch.if.properties.type.const, definition];
    }),
  );
}

function presenceIn(definition: ObjectSchema): Record<string, "required" | "optional"> {
  const required = new Set(definition.required);
  return Object.fromEntries(Object.keys(definition.properties ?? {}).map((name) => [name, required.has(name) ? "required" : "optional"]));
}

/** A copy of the schema whose definitions also reject fields they do not name (the published one allows them: additive changes). */
function closed(schema: EventsSchema): EventsSchema {
  const walk = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(walk);
    if (node === null || typeof node !== "object") return node;
    const copy = Object.fromEntries(Object.entries(node).map(([key, value]) => [key, walk(value)]));
    return "properties" in copy && !("additionalProperties" in copy) ? { ...copy, additionalProperties: false } : copy;
  };
  return { ...schema, $defs: walk(schema.$defs) as EventsSchema["$defs"] };
}

const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;
const compile = (schema: object) => new Ajv2020({ allErrors: true, strict: true, formats: { "date-time": ISO_TIME } }).compile(schema);

describe("events.schema.json", () => {
  it("is a valid draft 2020-12 schema that compiles in strict mode", async () => {
    const schema = await loadSchema();
    expect(schema).toMatchObject({ $schema: "https://json-schema.org/draft/2020-12/schema", required: ["v", "type", "time"] });
    expect(() => compile(schema)).not.toThrow();
  });

  it("defines exactly the event types of the KilnEvent union, plus the CLI's own lines", async () => {
    const types = [...lineDefinitions(await loadSchema()).keys()].sort();
    expect(types).toEqual([...Object.keys(EVENT_FIELDS), ...CLI_LINES].sort());
  });

  it("gives every event the fields of its KilnEvent member (plus v), required exactly where the type requires them", async () => {
    const definitions = lineDefinitions(await loadSchema());
    for (const [type, fields] of Object.entries(EVENT_FIELDS)) {
      const definition = definitions.get(type);
      expect(definition?.properties?.type, type).toEqual({ const: type });
      expect(definition && presenceIn(definition), type).toEqual({ v: "required", ...fields });
    }
  });

  it("describes the objects events carry and the enums as the types do", async () => {
    const schema = await loadSchema();
    for (const [name, fields] of Object.entries(NESTED_FIELDS)) expect(presenceIn(schema.$defs[name] ?? {}), name).toEqual(fields);
    const failed = lineDefinitions(schema).get("image.failed")?.properties?.error as ObjectSchema;
    expect(presenceIn(failed)).toEqual(IMAGE_FAILED_ERROR);
    const kept = lineDefinitions(schema).get("abort.kept")?.properties?.kept as { items: ObjectSchema };
    expect(presenceIn(kept.items)).toEqual(ABORT_KEPT_ITEM);
    expect(schema.$defs.stepName?.enum).toEqual(Object.keys(STEP_NAMES));
    const definitions = lineDefinitions(schema);
    expect(definitions.get("output")?.properties?.stream?.enum).toEqual(Object.keys(OUTPUT_STREAMS));
    expect(definitions.get("log")?.properties?.level?.enum).toEqual(Object.keys(LOG_LEVELS));
  });

  it("every field in the schema has a description", async () => {
    const undescribed: string[] = [];
    const walk = (node: ObjectSchema, path: string) => {
      for (const [name, field] of Object.entries(node.properties ?? {})) {
        const described = "description" in field || field.$ref !== undefined || ["v", "type", "time"].includes(name);
        if (!described) undescribed.push(`${path}.${name}`);
        walk(field as ObjectSchema, `${path}.${name}`);
      }
    };
    for (const [name, definition] of Object.entries((await loadSchema()).$defs)) {
      if (!("description" in definition)) undescribed.push(name);
      walk(definition, name);
    }
    expect(undescribed).toEqual([]);
  });

  it("accepts lines of types it does not know (a later v1 may add some), but not without v, type and time", async () => {
    const validate = compile(await loadSchema());
    expect(validate({ v: 1, type: "image.progress", image: "web", percent: 40, time: "2026-01-01T00:00:00.000Z" })).toBe(true);
    expect(validate({ type: "run.start", runId: "r", images: [], time: "2026-01-01T00:00:00.000Z" })).toBe(false);
    expect(validate({ v: 2, type: "run.start", runId: "r", images: [], time: "2026-01-01T00:00:00.000Z" })).toBe(false);
    expect(validate({ v: 1, type: "run.start", images: [], time: "2026-01-01T00:00:00.000Z" })).toBe(false);
  });

  it("matches every example in docs/events.md, and each line type has one", async () => {
    const schema = await loadSchema();
    const validate = compile(closed(schema));
    const docs = await readFile(new URL("../../../docs/events.md", import.meta.url), "utf8");
    const examples = [...docs.matchAll(/```json\n([\s\S]*?)```/g)].flatMap((block) => (block[1] ?? "").trim().split("\n"));
    const seen = new Set<string>();
    for (const example of examples) {
      const line = JSON.parse(example);
      expect(validate(line), `${example}\n${JSON.stringify(validate.errors, null, 2)}`).toBe(true);
      seen.add(line.type);
    }
    expect([...seen].sort()).toEqual([...lineDefinitions(schema).keys()].sort());
  });
});

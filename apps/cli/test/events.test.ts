import { readFile, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ensureFixtureImage, FIXTURE_IMAGE, listDockerResources, removeDockerResources } from "@kiln/driver-docker/testing";
import { kiln, project, runIdOf, type KilnOptions, type KilnRun } from "./helpers.js";

const runs: string[] = [];
afterEach(async () => {
  for (const runId of runs.splice(0)) await removeDockerResources(runId);
});
beforeAll(() => ensureFixtureImage(), 600_000);

interface StreamLine {
  v: number;
  type: string;
  time: string;
  [field: string]: unknown;
}

interface EventsSchema {
  allOf: { if: { properties: { type: { const: string } } } }[];
  $defs: Record<string, unknown>;
}

/**
 * The published schema, found the way a consumer finds it (the `@kiln/core/events.schema.json` export), with its definitions
 * closed: the published one accepts fields it does not name (later additive changes); here an undocumented field must fail.
 */
async function loadStreamSchema(): Promise<{ validate: ValidateFunction; types: Set<string> }> {
  const path = createRequire(import.meta.url).resolve("@kiln/core/events.schema.json");
  const schema: EventsSchema = JSON.parse(await readFile(path, "utf8"));
  const closeObjects = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(closeObjects);
    if (node === null || typeof node !== "object") return node;
    const copy = Object.fromEntries(Object.entries(node).map(([key, value]) => [key, closeObjects(value)]));
    return "properties" in copy && !("additionalProperties" in copy) ? { ...copy, additionalProperties: false } : copy;
  };
  const ajv = new Ajv2020({ allErrors: true, strict: true, formats: { "date-time": /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/ } });
  return {
    validate: ajv.compile({ ...schema, $defs: closeObjects(schema.$defs) }),
    types: new Set(schema.allOf.map((branch) => branch.if.properties.type.const)),
  };
}
const streamSchema = loadStreamSchema();

/**
 * `kiln <args> --json` as a user runs it (killed after 4 minutes, so a hang fails the test); every line it prints must be
 * JSON with `v` first, of a type the schema defines, and valid against it. Returns the run and its parsed lines.
 */
async function kilnJson(args: string[], options: KilnOptions = {}): Promise<KilnRun & { lines: StreamLine[] }> {
  const run = await kiln([...args, "--json"], {
    ...options,
    onStart: (child) => {
      const deadline = setTimeout(() => child.kill("SIGKILL"), 240_000);
      child.on("exit", () => clearTimeout(deadline));
      options.onStart?.(child);
    },
  });
  expect(run.signal, run.stderr).toBeNull();
  expect(run.stdout, run.stderr).toMatch(/\n$/);
  const { validate, types } = await streamSchema;
  const lines = run.stdout
    .slice(0, -1)
    .split("\n")
    .map((text) => {
      const line: StreamLine = JSON.parse(text);
      expect(Object.keys(line)[0], text).toBe("v");
      expect(types.has(line.type), `type "${line.type}" is not in events.schema.json: ${text}`).toBe(true);
      expect(validate(line), `${text}\n${JSON.stringify(validate.errors, null, 2)}`).toBe(true);
      return line;
    });
  return { ...run, lines };
}

/** base retries a step once; app (from base) prints a warning and has a check on a runtime file; broken fails, orphan is skipped. */
function bakeFile(id: string): string {
  return `
images:
  base:
    driver: docker
    source: ${FIXTURE_IMAGE}
    provision:
      - shell: { inline: ["echo provisioning base", "test -e /tmp/tried || { touch /tmp/tried; exit 1; }"], max_retries: 1 }
    tags: ["kiln-events-test/base-${id}:1"]
  app:
    from: base
    driver: docker
    provision:
      - shell: { inline: ["echo 0123456789abcdef0123456789abcdef > /etc/machine-id"] }
    runtime_only: []
    verify:
      runtime: { files: { /etc/app.conf: "mode=prod\\n" } }
      checks: [{ file: { path: /etc/app.conf, contains: mode=prod } }]
    tags: ["kiln-events-test/app-${id}:1"]
  broken:
    driver: docker
    source: ${FIXTURE_IMAGE}
    provision:
      - shell: { inline: ["echo the disk is on fire >&2", "exit 3"] }
  orphan: { driver: docker, from: broken }
`;
}

const newId = () => Math.random().toString(36).slice(2, 8);

describe("the --json event stream", { timeout: 300_000 }, () => {
  it("kiln build --json: every line of bakes that retry, warn, check, fail, skip and hit the cache matches the schema", async () => {
    await using dir = await project({ "kiln.yaml": bakeFile(newId()) });
    const baked = await kilnJson(["build", "--force", "-C", dir.dir]);
    runs.push(runIdOf(baked.stdout, baked.stderr));
    expect(baked.code, baked.stdout + baked.stderr).toBe(1);
    expect(baked.lines[0]).toMatchObject({ v: 1, type: "run.start", images: ["base", "app", "broken", "orphan"] });
    expect(baked.lines.at(-1)).toMatchObject({ v: 1, type: "run.end", ok: false, interrupted: false });
    const seen = [...new Set(baked.lines.map((line) => line.type))];
    const expected = ["image.start", "step.start", "step.end", "step.retry", "output", "log", "verify.check", "image.done"];
    expect(seen).toEqual(expect.arrayContaining(expected));
    expect(baked.lines.find((line) => line.type === "image.failed")).toMatchObject({ image: "broken", error: { code: "E_PROVISION" } });
    expect(baked.lines.find((line) => line.type === "image.skipped")).toMatchObject({ image: "orphan" });

    const cached = await kilnJson(["build", "-C", dir.dir, "--only", "app"]);
    expect(cached.code, cached.stdout + cached.stderr).toBe(0);
    expect(cached.lines.filter((line) => line.type === "image.cached").map((line) => line.image)).toEqual(["base", "app"]);
  });

  it("kiln verify --json: the checks and the closing verify.result match the schema, passing and failing", async () => {
    await using dir = await project({ "kiln.yaml": bakeFile(newId()), "dev.yaml": "files: { /etc/app.conf: mode=dev }\n" });
    const built = await kiln(["build", "--force", "-C", dir.dir, "--only", "app"]);
    runs.push(runIdOf(built.stdout, built.stderr));
    expect(built.code, built.stdout + built.stderr).toBe(0);

    const passing = await kilnJson(["verify", "app", "-C", dir.dir]);
    expect(passing.code, passing.stdout + passing.stderr).toBe(0);
    expect(passing.lines.find((line) => line.type === "verify.check")).toMatchObject({ ok: true, kind: "file" });
    expect(passing.lines.at(-1)).toMatchObject({ type: "verify.result", image: "app", ok: true, passed: 1, total: 1 });

    const failing = await kilnJson(["verify", "app", "-C", dir.dir, "--runtime-file", join(dir.dir, "dev.yaml")]);
    expect(failing.code, failing.stdout + failing.stderr).toBe(1);
    expect(failing.lines.at(-1)).toMatchObject({ type: "verify.result", ok: false, passed: 0, error: { code: "E_VERIFY" } });
  });

  it("--on-error=abort and Ctrl-C lines match the schema", async () => {
    await using dir = await project({ "kiln.yaml": bakeFile(newId()) });
    const aborted = await kilnJson(["build", "--force", "-C", dir.dir, "--only", "broken", "--on-error=abort"]);
    const abortRun = runIdOf(aborted.stdout, aborted.stderr);
    runs.push(abortRun);
    expect(aborted.code, aborted.stdout + aborted.stderr).toBe(1);
    const kept = aborted.lines.find((line) => line.type === "abort.kept");
    expect(kept).toMatchObject({ image: "broken" });
    expect(await listDockerResources(abortRun)).toHaveLength(1);

    let interrupted = false;
    const stopped = await kilnJson(["build", "--force", "-C", dir.dir, "--only", "base"], {
      // run.start is written once the run's signal handlers are in place.
      onStdout: (chunk, child) => {
        if (interrupted || !chunk.includes('"type":"run.start"')) return;
        interrupted = true;
        child.kill("SIGINT");
      },
    });
    runs.push(runIdOf(stopped.stdout, stopped.stderr));
    expect(stopped.code, stopped.stdout + stopped.stderr).toBe(130);
    expect(stopped.lines.find((line) => line.type === "signal")).toMatchObject({ signal: "SIGINT", force: false });
    expect(stopped.lines.at(-1)).toMatchObject({ type: "run.end", ok: false, interrupted: true });
  });

  it("a command that fails before a run prints one error line that matches the schema", async () => {
    await using dir = await project({ "kiln.yaml": bakeFile(newId()) });
    const unknownImage = await kilnJson(["build", "-C", dir.dir, "--only", "nope"]);
    expect(unknownImage.code).toBe(2);
    expect(unknownImage.lines).toEqual([expect.objectContaining({ type: "error", code: "E_CONFIG", message: 'no image named "nope"' })]);

    await writeFile(join(dir.dir, "kiln.yaml"), `images:\n  web:\n    driver: docker\n    source: ${FIXTURE_IMAGE}\n    colour: red\n`);
    const invalid = await kilnJson(["verify", "web", "-C", dir.dir]);
    expect(invalid.code).toBe(2);
    expect(invalid.lines).toHaveLength(1);
    expect(invalid.lines[0]?.diagnostics).toEqual([expect.objectContaining({ path: "images.web.colour", line: 5 })]);
  });
});

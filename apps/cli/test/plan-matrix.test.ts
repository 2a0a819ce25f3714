import Docker from "dockerode";
import { describe, expect, it } from "vitest";
import { LABELS } from "@kiln/core";
import { FIXTURE_IMAGE } from "@kiln/driver-docker/testing";
import { dockerRuns, kiln, type KilnOptions, marker, project, runIdOf } from "./helpers.js";

const docker = new Docker();
const runs = dockerRuns();

/** base → child1, base → child2, and an unrelated `other`. */
function family(id: string): string {
  const image = (name: string, from?: string) =>
    `  ${name}:\n    driver: docker\n    ${from ? `from: ${from}` : `source: ${FIXTURE_IMAGE}`}\n    provision: [{ shell: { inline: ["echo ${id}-${name} > /etc/${name}"] } }]\n`;
  return `images:\n${image("base")}${image("child1", "base")}${image("child2", "base")}${image("other")}`;
}

/** A hung kiln fails its test instead of stalling CI: SIGTERM, which kiln answers by removing what it created. */
const bounded: KilnOptions = {
  onStart: (child) => {
    const timer = setTimeout(() => child.kill("SIGTERM"), 120_000);
    child.on("close", () => clearTimeout(timer));
  },
};

/** `kiln build` that must succeed; its run is cleaned up after the test. */
async function build(dir: string, ...args: string[]): Promise<void> {
  const result = await kiln(["build", "-C", dir, ...args], bounded);
  runs.push(runIdOf(result.stdout, result.stderr));
  expect(result.code, result.stdout + result.stderr).toBe(0);
}

interface Matrix {
  waves: { include: { image: string; bake_key: string | null; from: string | null }[] }[];
  wave_count: number;
  bake: number;
  cached: number;
}

async function matrix(dir: string, ...args: string[]): Promise<Matrix> {
  const result = await kiln(["plan", "-C", dir, "--matrix", ...args], bounded);
  expect(result.code, result.stdout + result.stderr).toBe(0);
  // One document on one line: what a CI step writes to its output (`echo "matrix=$(kiln plan --matrix)" >> $GITHUB_OUTPUT`).
  expect(result.stdout.trim().split("\n")).toHaveLength(1);
  return JSON.parse(result.stdout);
}

async function planLines(dir: string): Promise<Record<string, Record<string, unknown>>> {
  const result = await kiln(["plan", "-C", dir, "--json"], bounded);
  expect(result.code, result.stdout + result.stderr).toBe(0);
  const lines = result.stdout
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line));
  return Object.fromEntries(lines.map((line) => [line.image, line]));
}

const names = (document: Matrix) => document.waves.map((wave) => wave.include.map((entry) => entry.image));

describe("kiln plan for a CI matrix", { timeout: 300_000 }, () => {
  it("puts images to bake in waves, moves children to wave 0 once their parent is cached, and gives the key they bake to", async () => {
    await using dir = await project({ "kiln.yaml": family(marker()) });

    const first = await matrix(dir.dir);
    expect(names(first)).toEqual([
      ["base", "other"],
      ["child1", "child2"],
    ]);
    expect(first).toMatchObject({ wave_count: 2, bake: 4, cached: 0 });
    expect(first.waves[0]?.include[0]).toEqual({ image: "base", bake_key: expect.stringMatching(/^[0-9a-f]{16,}$/), from: null });
    // A child's key depends on the artefact its parent is about to become: unknown until that bake.
    expect(first.waves[1]?.include[0]).toEqual({ image: "child1", bake_key: null, from: "base" });
    // --only keeps the ancestors an image needs, as kiln build --only does.
    expect(names(await matrix(dir.dir, "--only", "child1"))).toEqual([["base"], ["child1"]]);

    const lines = await planLines(dir.dir);
    expect(lines.base).toMatchObject({ action: "bake", cached: false, wave: 0, from: null, reasons: ["no artefact"] });
    expect(lines.child2).toMatchObject({ action: "bake", cached: false, wave: 1, from: "base", bake_key: null });

    await build(dir.dir, "--only", "base");
    const afterBase = await matrix(dir.dir);
    expect(names(afterBase)).toEqual([["child1", "child2", "other"]]);
    expect(afterBase).toMatchObject({ wave_count: 1, bake: 3, cached: 1 });
    expect((await planLines(dir.dir)).base).toMatchObject({ action: "cached", cached: true, wave: null });
    const planned = afterBase.waves[0]?.include.find((entry) => entry.image === "child1");
    expect(planned?.bake_key).toMatch(/^[0-9a-f]{16,}$/);

    // The job of that matrix entry: its artefact carries the key the plan gave.
    await build(dir.dir, "--only", "child1");
    const child1 = (await planLines(dir.dir)).child1;
    expect(child1).toMatchObject({ action: "cached", cached: true, wave: null, from: "base", bake_key: planned?.bake_key });
    const image = await docker.getImage(child1?.artifact_id as string).inspect();
    expect(image.Config.Labels?.[LABELS.key]).toBe(planned?.bake_key);
    expect(names(await matrix(dir.dir))).toEqual([["child2", "other"]]);

    // Nothing to bake: no wave at all, so every wave job of a pipeline is skipped (an empty matrix is an error on GitHub).
    await build(dir.dir);
    expect(await matrix(dir.dir)).toEqual({ waves: [], wave_count: 0, bake: 0, cached: 4 });
  });
});

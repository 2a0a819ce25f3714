import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FIXTURE_IMAGE, listDockerResources } from "@kiln/driver-docker/testing";
import { buildOk, dockerRuns, kiln, marker, project, runIdOf } from "./helpers.js";

const runs = dockerRuns();

/** base → app, and an unrelated image `tool` whose step runs a script file. */
function graph(id: string, baseLine = "base v1"): string {
  return `
steps:
  stamp:
    - shell: { inline: ["echo ${id} > /etc/kiln-test-marker"] }
images:
  base:
    driver: docker
    source: ${FIXTURE_IMAGE}
    provision:
      - use: stamp
      - shell: { inline: ["echo '${baseLine}' > /etc/base-version"] }
  app:
    driver: docker
    from: base
    provision:
      - shell: { inline: ["cat /etc/base-version > /opt-app-saw-base"] }
  tool:
    driver: docker
    source: ${FIXTURE_IMAGE}
    provision:
      - use: stamp
      - shell: { script: ./tool.sh }
`;
}

/** Builds and expects success; the run is cleaned up after the test. */
const build = (dir: string, ...args: string[]) => buildOk(runs, dir, ...args);

const status = (output: string, image: string) => new RegExp(`==> ${image}: (baked|cached) `).exec(output)?.[1];

describe("image graph", { timeout: 240_000 }, () => {
  it("bakes parents before children, reuses unchanged images, and rebakes exactly what a change affects", async () => {
    const id = marker();
    await using dir = await project({ "kiln.yaml": graph(id), "tool.sh": "#!/bin/sh\necho tool v1 > /etc/tool-version\n" });

    const first = await build(dir.dir);
    expect(first.indexOf("==> base: baked")).toBeLessThan(first.indexOf("==> app: launch"));
    expect([status(first, "base"), status(first, "app"), status(first, "tool")]).toEqual(["baked", "baked", "baked"]);

    const again = await build(dir.dir);
    expect([status(again, "base"), status(again, "app"), status(again, "tool")]).toEqual(["cached", "cached", "cached"]);
    expect(again).not.toMatch(/: launch /);
    expect((await kiln(["plan", "-C", dir.dir])).stdout).toMatch(/0 to bake, 3 cached/);
    expect((await kiln(["build", "-C", dir.dir, "--dry-run", "--parallel", "2"])).stdout).toMatch(/0 to bake, 3 cached/);

    // A changed script file: only its image.
    await writeFile(join(dir.dir, "tool.sh"), "#!/bin/sh\necho tool v2 > /etc/tool-version\n");
    expect((await kiln(["plan", "-C", dir.dir])).stdout).toMatch(/tool\s+bake: provision\[1\] shell changed/);
    const afterScript = await build(dir.dir);
    expect([status(afterScript, "base"), status(afterScript, "app"), status(afterScript, "tool")]).toEqual(["cached", "cached", "baked"]);

    // A changed base: the base and everything built on it, and nothing else.
    await writeFile(join(dir.dir, "kiln.yaml"), graph(id, "base v2"));
    const planned = (await kiln(["plan", "-C", dir.dir])).stdout;
    expect(planned).toMatch(/base\s+bake: provision\[1\] shell changed/);
    expect(planned).toMatch(/app\s+bake: parent base will be baked first/);
    expect(planned).toMatch(/tool\s+cached/);
    const afterBase = await build(dir.dir);
    expect([status(afterBase, "base"), status(afterBase, "app"), status(afterBase, "tool")]).toEqual(["baked", "baked", "cached"]);
    expect(
      (await kiln(["plan", "-C", dir.dir, "--json"])).stdout
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line).action),
    ).toEqual(["cached", "cached", "cached"]);

    // --force=tool rebakes that image alone.
    const forced = await build(dir.dir, "--force=tool");
    expect([status(forced, "base"), status(forced, "app"), status(forced, "tool")]).toEqual(["cached", "cached", "baked"]);
  });

  it("explains a rebake caused by a parent that changed outside this run", async () => {
    const id = marker();
    await using dir = await project({ "kiln.yaml": graph(id), "tool.sh": "#!/bin/sh\ntrue\n" });
    await build(dir.dir);
    await build(dir.dir, "--only", "base", "--force");
    const planned = (await kiln(["plan", "-C", dir.dir])).stdout;
    expect(planned).toMatch(/app\s+bake: parent changed \(base [0-9a-f]{12} → [0-9a-f]{12}\)/);
  });

  it("bakes independent images at once up to --parallel, and one at a time with --parallel 1", async () => {
    const id = marker();
    const images = ["a", "b", "c", "d"].map(
      (name) =>
        `  ${name}:\n    driver: docker\n    source: ${FIXTURE_IMAGE}\n    provision: [{ shell: { inline: ["echo ${id}-${name} > /x"] } }]\n`,
    );
    await using dir = await project({ "kiln.yaml": `images:\n${images.join("")}` });
    const order = (output: string) =>
      output
        .split("\n")
        .filter((line) => /: (launch|baked) /.test(line))
        .map((line) => line.replace(/^==> (\w+): (launch|baked).*/, "$2 $1"));

    const serial = order(await build(dir.dir, "--parallel", "1"));
    expect(serial).toEqual(["launch a", "baked a", "launch b", "baked b", "launch c", "baked c", "launch d", "baked d"]);

    const parallel = order(await build(dir.dir, "--parallel", "2", "--force"));
    // Two bakes start before the first one finishes; never more than two run at once.
    expect(parallel.slice(0, 2).sort()).toEqual(["launch a", "launch b"]);
    let running = 0;
    let most = 0;
    for (const entry of parallel) {
      running += entry.startsWith("launch") ? 1 : -1;
      most = Math.max(most, running);
    }
    expect(most).toBe(2);
  });

  it("composes named step lists with use:, and reports an unknown one with its position", async () => {
    await using dir = await project({
      "kiln.yaml": `steps:\n  a: [{ shell: { inline: ["true"] } }]\nimages:\n  x:\n    driver: docker\n    source: ${FIXTURE_IMAGE}\n    provision:\n      - use: a\n      - use: nope\n`,
    });
    const result = await kiln(["validate", "-C", dir.dir]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('kiln.yaml:9:14: images.x.provision[1].use: no step list named "nope"');
  });

  it("leaves nothing behind when the cached path is taken", async () => {
    const id = marker();
    await using dir = await project({ "kiln.yaml": graph(id), "tool.sh": "#!/bin/sh\ntrue\n" });
    await build(dir.dir);
    const second = await kiln(["build", "-C", dir.dir, "--json"]);
    const runId = runIdOf(second.stdout);
    runs.push(runId);
    expect(second.stdout.split("\n").filter((line) => line.includes('"type":"image.cached"'))).toHaveLength(3);
    expect(await listDockerResources(runId)).toEqual([]);
  });
});

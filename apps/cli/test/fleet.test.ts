import Docker from "dockerode";
import { describe, expect, it } from "vitest";
import { FIXTURE_IMAGE } from "@kiln/driver-docker/testing";
import { buildOk, dockerRuns, kiln, marker, project } from "./helpers.js";

const docker = new Docker();
const runs = dockerRuns();

/** base → app → edge, base → api, and an unrelated `tool`. */
function fleet(id: string): string {
  const image = (name: string, from?: string) =>
    `  ${name}:\n    driver: docker\n    ${from ? `from: ${from}` : `source: ${FIXTURE_IMAGE}`}\n    provision: [{ shell: { inline: ["echo ${id}-${name} > /etc/${name}"] } }]\n    verify: { checks: [{ file: /etc/${name} }] }\n`;
  return `images:\n${image("base")}${image("app", "base")}${image("edge", "app")}${image("api", "base")}${image("tool")}`;
}

/** Builds and expects success; the run is cleaned up after the test. */
const build = (dir: string, ...args: string[]) => buildOk(runs, dir, ...args);

/** Every artefact `kiln images --json` lists, flattened from its tree (parents before children). */
async function imageList(dir: string): Promise<{ image: string; id: string }[]> {
  type Node = { image: string; id: string; children: Node[] };
  const flatten = (nodes: Node[]): Node[] => nodes.flatMap((node) => [node, ...flatten(node.children)]);
  return flatten(JSON.parse((await kiln(["images", "-C", dir, "--json"])).stdout).artifacts);
}

const baked = (output: string) => [...output.matchAll(/==> (\w+): baked /g)].map((match) => match[1]).sort();

describe("fleet lifecycle", { timeout: 300_000 }, () => {
  it("finds images outdated by a newer parent and by age, and rebakes them and their children in waves", async () => {
    await using dir = await project({ "kiln.yaml": fleet(marker()) });
    await build(dir.dir);
    const current = await kiln(["outdated", "-C", dir.dir]);
    expect(current.code, current.stdout + current.stderr).toBe(0);
    expect(current.stdout).toMatch(/base\s+current/);

    // The base is rebaked on its own (e.g. by another pipeline): its children are now outdated.
    await build(dir.dir, "--only", "base", "--force");
    const byParent = await kiln(["outdated", "-C", dir.dir]);
    expect(byParent.code).toBe(3);
    expect(byParent.stdout).toMatch(/app\s+outdated: parent base has a newer artefact \([0-9a-f]{12} → [0-9a-f]{12}\)/);
    expect(byParent.stdout).toMatch(/api\s+outdated: parent base has a newer artefact/);
    expect(byParent.stdout).toMatch(/tool\s+current/);
    // edge is built on app, which is rebaked: edge is rebaked with it, and says so.
    expect(byParent.stdout).toMatch(
      /edge\s+outdated: app is outdated \(parent base has a newer artefact \([0-9a-f]{12} → [0-9a-f]{12}\)\)/,
    );

    const dry = await kiln(["build", "-C", dir.dir, "--rebake-outdated", "--dry-run"]);
    expect(dry.stdout).toMatch(/wave 1: app, api\nwave 2: edge/);
    const rebaked = await build(dir.dir, "--rebake-outdated", "--parallel", "1");
    expect(baked(rebaked)).toEqual(["api", "app", "edge"]);
    expect(rebaked).toMatch(/base: cached/);
    expect((await kiln(["outdated", "-C", dir.dir])).code).toBe(0);

    // Timer-driven security rebakes: everything older than the maximum age, parents before children.
    const byAge = await kiln(["outdated", "-C", dir.dir, "--max-age", "0s", "--json"]);
    expect(byAge.code).toBe(3);
    expect(
      byAge.stdout
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line).reasons[0]),
    ).toEqual(Array(5).fill(expect.stringMatching(/^older than 0s/)));
    const waves = await kiln(["build", "-C", dir.dir, "--rebake-outdated", "--max-age", "0s", "--dry-run"]);
    expect(waves.stdout).toMatch(/wave 1: base, tool\nwave 2: app, api\nwave 3: edge/);
    const all = await build(dir.dir, "--rebake-outdated", "--max-age", "0s", "--parallel", "2");
    expect(baked(all)).toEqual(["api", "app", "base", "edge", "tool"]);
    expect(all.indexOf("==> base: baked")).toBeLessThan(all.indexOf("==> app: launch"));
    expect(all.indexOf("==> app: baked")).toBeLessThan(all.indexOf("==> edge: launch"));
  });

  it("finds an image outdated when its source reference now resolves to another image", async () => {
    const id = marker();
    const source = `kiln-cli-test/source-${id}:1`;
    const labels = { "dev.kiln.build": `fleet-test-${id}` };
    runs.push(labels["dev.kiln.build"]);
    // Two different images, as a registry tag would move between them.
    const commit = async (content: string) => {
      const container = await docker.createContainer({
        Image: FIXTURE_IMAGE,
        Cmd: ["sh", "-c", `echo ${content} > /etc/source-version`],
        Labels: labels,
      });
      await container.start();
      await container.wait();
      const image = (await container.commit({ changes: [`LABEL dev.kiln.build=${labels["dev.kiln.build"]}`] })) as { Id: string };
      await container.remove({ force: true });
      return image.Id;
    };
    const first = await commit("v1");
    const second = await commit("v2");
    const [repo, tag] = source.split(":") as [string, string];
    await docker.getImage(first).tag({ repo, tag });
    await using dir = await project({
      "kiln.yaml": `images:\n  app:\n    driver: docker\n    source: ${source}\n    provision: [{ shell: { inline: ["echo ${id}"] } }]\n`,
    });
    await build(dir.dir);
    await docker.getImage(second).tag({ repo, tag });
    const result = await kiln(["outdated", "-C", dir.dir]);
    expect(result.code).toBe(3);
    expect(result.stdout).toContain(`app  outdated: source changed (${first.slice(7, 19)} → ${second.slice(7, 19)})`);
  });

  it("promotes verified artefacts to channels, rolls back, and shows channels in the lineage", async () => {
    await using dir = await project({ "kiln.yaml": fleet(marker()) });
    await build(dir.dir, "--only", "app");
    const first = (await kiln(["promote", "app", "prod", "-C", dir.dir])).stdout;
    expect(first).toMatch(/app: prod → ([0-9a-f]{12})/);
    await build(dir.dir, "--only", "app", "--force=app");
    const second = await kiln(["promote", "app", "prod", "-C", dir.dir]);
    expect(second.stdout).toMatch(/app: prod → [0-9a-f]{12} \(was [0-9a-f]{12}\)/);
    const [firstId] = /→ ([0-9a-f]{12})/.exec(first)?.slice(1) ?? [];
    const [secondId] = /→ ([0-9a-f]{12})/.exec(second.stdout)?.slice(1) ?? [];
    expect(secondId).not.toBe(firstId);

    const images = (await kiln(["images", "-C", dir.dir])).stdout;
    expect(images).toMatch(new RegExp(`app  ${secondId}.*channels: prod`));
    const back = await kiln(["promote", "--rollback", "app", "prod", "-C", dir.dir]);
    expect(back.stdout).toContain(`app: prod rolled back from ${secondId} to ${firstId}`);
    expect((await kiln(["images", "-C", dir.dir])).stdout).toMatch(new RegExp(`app  ${firstId}.*channels: prod`));
    const projectName = dir.dir.split("/").at(-1)?.toLowerCase();
    expect((await docker.getImage(`kiln-channel/${projectName}/app:prod`).inspect()).Id).toContain(firstId);
  });

  it("refuses to promote an artefact without a passed verify unless forced", async () => {
    const id = marker();
    await using dir = await project({
      "kiln.yaml": `images:\n  bare:\n    driver: docker\n    source: ${FIXTURE_IMAGE}\n    provision: [{ shell: { inline: ["echo ${id}"] } }]\n`,
    });
    await build(dir.dir);
    const refused = await kiln(["promote", "bare", "prod", "-C", dir.dir]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/has no passed verify/);
    expect((await kiln(["promote", "bare", "prod", "--force", "-C", dir.dir])).code).toBe(0);
  });

  it("prunes old untagged artefacts but keeps the newest, tagged ones and channel targets", async () => {
    const id = marker();
    await using dir = await project({ "kiln.yaml": fleet(id) });
    for (let round = 0; round < 3; round++) await build(dir.dir, "--only", "tool", "--force");
    const ids = (await imageList(dir.dir)).filter((item) => item.image === "tool").map((item) => item.id);
    expect(ids).toHaveLength(3);
    const [newest = "", middle = "", oldest = ""] = ids;
    await kiln(["promote", "tool", "stable", "--artifact", oldest, "-C", dir.dir]);

    const dry = await kiln(["prune", "-C", dir.dir, "--keep", "1", "--dry-run"]);
    expect(dry.stdout).toMatch(/1 to remove/);
    const result = await kiln(["prune", "-C", dir.dir, "--keep", "1"]);
    expect(result.stdout).toContain(`removed tool ${middle.slice(7, 19)}`);
    const left = (await imageList(dir.dir)).map((item) => item.id);
    expect(left).toContain(newest);
    expect(left).toContain(oldest);
    expect(left).not.toContain(middle);
  });

  it("traces an artefact's provenance down to its source", async () => {
    await using dir = await project({ "kiln.yaml": fleet(marker()) });
    await build(dir.dir, "--only", "edge");
    const edge = (await imageList(dir.dir)).find((item) => item.image === "edge");
    if (!edge) throw new Error("kiln images lists no edge artefact");
    const chain = await kiln(["provenance", edge.id, "-C", dir.dir]);
    expect(chain.code, chain.stderr).toBe(0);
    expect(chain.stdout).toMatch(
      /^edge sha256:[\s\S]*\nbuilt on app sha256:[\s\S]*\nbuilt on base sha256:[\s\S]*source kiln-fixture\/debian:bookworm@sha256:[\s\S]*from a debootstrap tree: .*suite=bookworm/,
    );
  });
});

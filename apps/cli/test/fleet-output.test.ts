import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Docker from "dockerode";
import { describe, expect, it } from "vitest";
import { FIXTURE_IMAGE } from "@kiln/driver-docker/testing";
import { buildOk, dockerRuns, kiln, marker, project } from "./helpers.js";
import type { LineageNode } from "../src/render/lineage.js";

const docker = new Docker();
const runs = dockerRuns();
const build = (dir: string, ...args: string[]) => buildOk(runs, dir, ...args);
const short = (id: string) => id.replace(/^sha256:/, "").slice(0, 12);

/** base → app → edge, base → api, and an unrelated `tool`; `base` starts from `baseSource` and carries a version tag. */
function fleet(id: string, baseSource: string = FIXTURE_IMAGE): string {
  const image = (name: string, start: string, extra = "") =>
    [
      `  ${name}:`,
      "    driver: docker",
      `    ${start}`,
      `    provision: [{ shell: { inline: ["echo ${id}-${name} > /etc/${name}"] } }]`,
      `    verify: { checks: [{ file: /etc/${name} }] }`,
      ...(extra ? [extra] : []),
    ].join("\n");
  return `${[
    "images:",
    image("base", `source: ${baseSource}`, `    tags: ["kiln-cli-test/fleet-output-${id}:1.0"]`),
    image("app", "from: base"),
    image("edge", "from: app"),
    image("api", "from: base"),
    image("tool", `source: ${FIXTURE_IMAGE}`),
  ].join("\n")}\n`;
}

/** Two different labelled images (removed with the test's runs), so a source tag can move from one to the other. */
async function movingSource(id: string): Promise<{ ref: string; move: () => Promise<void>; first: string; second: string }> {
  const label = `fleet-output-test-${id}`;
  runs.push(label);
  const commit = async (content: string) => {
    const container = await docker.createContainer({
      Image: FIXTURE_IMAGE,
      Cmd: ["sh", "-c", `echo ${content} > /etc/source-version`],
      Labels: { "dev.kiln.build": label },
    });
    await container.start();
    await container.wait();
    // The committed image keeps running when verify starts it (the fixture itself has no command; this container's exits).
    const changes = [`LABEL dev.kiln.build=${label}`, 'CMD ["sleep", "infinity"]'];
    const image = (await container.commit({ changes })) as { Id: string };
    await container.remove({ force: true });
    return image.Id;
  };
  const first = await commit("v1");
  const second = await commit("v2");
  const repo = `kiln-cli-test/fleet-output-source-${id}`;
  await docker.getImage(first).tag({ repo, tag: "1" });
  return { ref: `${repo}:1`, first, second, move: () => docker.getImage(second).tag({ repo, tag: "1" }) };
}

/** What `kiln images --json` prints per artefact: the CLI's own type, so a renamed field fails to compile here. */
type ImageNode = LineageNode;

describe("fleet output", { timeout: 300_000 }, () => {
  it("shows the descendants of an outdated image as outdated because of it, as --rebake-outdated rebakes them", async () => {
    const id = marker();
    const source = await movingSource(id);
    await using dir = await project({ "kiln.yaml": fleet(id, source.ref) });
    await build(dir.dir);
    const fresh = await kiln(["outdated", "-C", dir.dir]);
    expect(fresh.code, fresh.stdout + fresh.stderr).toBe(0);

    // The base's source tag moves (a new upstream release): the base and everything built on it must be rebaked.
    await source.move();
    const text = await kiln(["outdated", "-C", dir.dir]);
    expect(text.code, text.stderr).toBe(3);
    const changed = `source changed (${short(source.first)} → ${short(source.second)})`;
    expect(text.stdout.split("\n")).toEqual([
      `base  outdated: ${changed}`,
      `app   outdated: base is outdated (${changed})`,
      "edge  outdated: app is outdated (because of base)",
      `api   outdated: base is outdated (${changed})`,
      "tool  current",
      "",
    ]);

    const json = await kiln(["outdated", "-C", dir.dir, "--json"]);
    expect(json.code).toBe(3);
    const lines = json.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(lines.map((line) => [line.image, line.outdated, line.because_of])).toEqual([
      ["base", true, null],
      ["app", true, "base"],
      ["edge", true, "app"],
      ["api", true, "base"],
      ["tool", false, null],
    ]);
    // The same reasons as the text, and the fields the lines had before.
    expect(lines.map((line) => line.reasons.join("; "))).toEqual(
      text.stdout
        .trim()
        .split("\n")
        .map((line) => line.replace(/^\w+\s+(outdated: )?/, "").replace(/^current$/, "")),
    );
    for (const line of lines) expect(line.artifact_id).toMatch(/^sha256:[0-9a-f]{64}$/);

    // What outdated lists is exactly what --rebake-outdated rebakes, parents first.
    const dry = await kiln(["build", "-C", dir.dir, "--rebake-outdated", "--dry-run"]);
    expect(dry.stdout).toContain("edge: app is outdated (because of base)\n");
    expect(dry.stdout).toMatch(/wave 1: base\nwave 2: app, api\nwave 3: edge\n/);
    const rebaked = await build(dir.dir, "--rebake-outdated", "--parallel", "2");
    expect([...rebaked.matchAll(/==> (\w+): baked /g)].map((match) => match[1]).sort()).toEqual(["api", "app", "base", "edge"]);
    const after = await kiln(["outdated", "-C", dir.dir]);
    expect(after.code, after.stdout).toBe(0);
    expect(after.stdout).toMatch(/edge\s+current/);
  });

  it("draws sibling branches with ├─ and └─, and gives the same tree as one JSON document", async () => {
    await using dir = await project({ "kiln.yaml": fleet(marker()) });
    await build(dir.dir);
    const text = await kiln(["images", "-C", dir.dir]);
    expect(text.code, text.stderr).toBe(0);
    const lines = text.stdout.trim().split("\n");
    // The branch drawing and image name of each line; the rest is id, key, time, commit, tags.
    expect(lines.map((line) => /^([│├└─ ]*)(\w+) {2}[0-9a-f]{12} {2}key [0-9a-f]{12} {2}/.exec(line)?.slice(1).join(""))).toEqual([
      "base",
      "├─ app",
      "│  └─ edge",
      "└─ api",
      "tool",
    ]);

    const json = await kiln(["images", "-C", dir.dir, "--json"]);
    expect(json.code, json.stderr).toBe(0);
    const document = JSON.parse(json.stdout) as { project: string; artifacts: ImageNode[] };
    expect(document.project).toBe(dir.dir.split("/").at(-1));
    const shape = (node: ImageNode): unknown => ({ [node.image]: node.children.map(shape) });
    expect(document.artifacts.map(shape)).toEqual([{ base: [{ app: [{ edge: [] }] }, { api: [] }] }, { tool: [] }]);
    const [base, tool] = document.artifacts as [ImageNode, ImageNode];
    const [app, api] = base.children as [ImageNode, ImageNode];
    expect(Object.keys(app).sort()).toEqual(["channels", "children", "created", "git", "id", "image", "key", "parent", "source", "tags"]);
    expect([base.parent, tool.parent, app.parent, api.parent]).toEqual([null, null, base.id, base.id]);
    expect(base.tags).toEqual([expect.stringMatching(/^kiln-cli-test\/fleet-output-\w+:1\.0$/)]);
    // The text and the document list the same artefacts, in the same order.
    const ids = (nodes: ImageNode[]): string[] => nodes.flatMap((node) => [short(node.id), ...ids(node.children)]);
    expect(lines.map((line) => /([0-9a-f]{12}) {2}key/.exec(line)?.[1])).toEqual(ids(document.artifacts));
  });

  it("draws the lineage with versions and channels as a Graphviz or Mermaid graph, and as SVG through dot", async () => {
    const id = marker();
    await using dir = await project({ "kiln.yaml": fleet(id) });
    await build(dir.dir);
    expect((await kiln(["promote", "app", "prod", "-C", dir.dir])).code).toBe(0);
    const tree = JSON.parse((await kiln(["images", "-C", dir.dir, "--json"])).stdout) as { artifacts: ImageNode[] };
    const all = (nodes: ImageNode[]): ImageNode[] => nodes.flatMap((node) => [node, ...all(node.children)]);
    const byImage = Object.fromEntries(all(tree.artifacts).map((node) => [node.image, short(node.id)]));

    const dot = await kiln(["images", "-C", dir.dir, "--format", "dot"]);
    expect(dot.code, dot.stderr).toBe(0);
    // The parent → child edges, named by the artefacts' short ids.
    const dotEdges = [...dot.stdout.matchAll(/^ {2}a_(\w+) -> a_(\w+);$/gm)].map((match) => `${match[1]} -> ${match[2]}`);
    expect(dotEdges.sort()).toEqual(
      [`${byImage.base} -> ${byImage.app}`, `${byImage.base} -> ${byImage.api}`, `${byImage.app} -> ${byImage.edge}`].sort(),
    );
    // Graphviz itself accepts it, and the picture shows image, id, version tag and channel.
    const rendered = spawnSync("dot", ["-Tsvg"], { input: dot.stdout, encoding: "utf8", timeout: 60_000 });
    expect(rendered.status, rendered.stderr).toBe(0);
    // Graphviz writes "-" as &#45; in SVG text.
    const svgTexts = [...rendered.stdout.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((match) =>
      (match[1] as string).replace(/&#(\d+);/g, (_, code: string) => String.fromCharCode(Number(code))),
    );
    expect(svgTexts).toEqual(expect.arrayContaining(["base", "app", "edge", "api", "tool", byImage.app, "channels: prod"]));
    expect(svgTexts).toContain(`kiln-cli-test/fleet-output-${id}:1.0`);

    const svg = await kiln(["images", "-C", dir.dir, "--format", "svg"]);
    expect(svg.code, svg.stderr).toBe(0);
    expect(svg.stdout).toMatch(/^<\?xml[\s\S]*<svg[\s\S]*>channels: prod<\/text>[\s\S]*<\/svg>\n$/);

    const mermaid = await kiln(["images", "-C", dir.dir, "--format", "mermaid"]);
    expect(mermaid.code, mermaid.stderr).toBe(0);
    const [header, ...body] = mermaid.stdout.trimEnd().split("\n");
    expect(header).toBe("flowchart TB");
    const nodes = new Map<string, string[]>();
    const edges: string[] = [];
    const classes: string[] = [];
    for (const line of body) {
      const node = /^ {2}(\w+)\["([^"]*)"\]$/.exec(line);
      const edge = /^ {2}(\w+) --> (\w+)$/.exec(line);
      const klass = /^ {2}class ([\w,]+) channel$/.exec(line);
      if (node) nodes.set(node[1] as string, (node[2] as string).split("<br/>"));
      else if (edge) edges.push(`${edge[1]} --> ${edge[2]}`);
      else if (klass) classes.push(...(klass[1] as string).split(","));
      else expect(line).toMatch(/^ {2}classDef channel /);
    }
    const nameOf = (nodeId: string) => nodes.get(nodeId)?.[0];
    expect([...nodes.values()].map((label) => `${label[0]} ${label[1]}`).sort()).toEqual(
      Object.entries(byImage)
        .map(([image, shortId]) => `${image} ${shortId}`)
        .sort(),
    );
    // Every edge joins two declared nodes, parent → child.
    const edgeNames = edges.map((edge) => edge.split(" --> ").map(nameOf).join(" → "));
    expect(edgeNames.sort()).toEqual(["app → edge", "base → api", "base → app"]);
    expect(classes.map(nameOf)).toEqual(["app"]);
    expect([...nodes.values()].find((label) => label[0] === "app")).toContain("channels: prod");
    expect([...nodes.values()].find((label) => label[0] === "base")).toContain(`kiln-cli-test/fleet-output-${id}:1.0`);
  });

  it("says how to install Graphviz when --format svg finds no dot, and rejects an unknown format", async () => {
    await using dir = await project({ "kiln.yaml": fleet(marker()) });
    const emptyPath = await mkdtemp(join(tmpdir(), "kiln-no-dot-"));
    try {
      const result = await kiln(["images", "-C", dir.dir, "--format", "svg"], { env: { PATH: emptyPath } });
      expect(result.code).toBe(2);
      expect(result.stdout).toBe("");
      expect(result.stderr).toContain("apt-get install -y graphviz");
    } finally {
      await rm(emptyPath, { recursive: true, force: true });
    }
    const unknown = await kiln(["images", "-C", dir.dir, "--format", "png"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown --format "png"');
  });
});

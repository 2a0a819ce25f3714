#!/usr/bin/env node
// Image-graph benchmarks, in one run: (a) a no-op `kiln build` of an unchanged 3-image project (everything cached) against Node
// start-up; (b) baking 4 independent images with --parallel 4 and --parallel 1, against baking one of them.
// Usage: node bench/graph.mjs [--runs 7]   (after pnpm build)
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const cli = join(root, "apps/cli/dist/cli.js");
const runsFlag = process.argv.indexOf("--runs");
const RUNS = runsFlag > 0 ? Number(process.argv[runsFlag + 1]) : 7;
const { ensureFixtureImage, FIXTURE_IMAGE, removeDockerResources } = await import(join(root, "packages/drivers/docker/dist/testing.js"));
await ensureFixtureImage();

const marker = `${Date.now()}`;
const image = (name, from) =>
  `  ${name}:\n    driver: docker\n    ${from ? `from: ${from}` : `source: ${FIXTURE_IMAGE}`}\n    provision: [{ shell: { inline: ["echo ${marker}-${name} > /etc/${name}"] } }]\n`;
const graphDir = mkdtempSync(join(tmpdir(), "kiln-bench-graph-"));
writeFileSync(join(graphDir, "kiln.yaml"), `images:\n${image("base")}${image("app", "base")}${image("tool")}`);
const wideDir = mkdtempSync(join(tmpdir(), "kiln-bench-wide-"));
writeFileSync(join(wideDir, "kiln.yaml"), `images:\n${["a", "b", "c", "d"].map((name) => image(name)).join("")}`);

const runIds = [];
function time(args) {
  const started = process.hrtime.bigint();
  const result = spawnSync(process.execPath, [cli, ...args], { encoding: "utf8", env: { ...process.env, CI: "1" } });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (result.status !== 0) throw new Error(`kiln ${args.join(" ")} failed:\n${result.stdout}\n${result.stderr}`);
  const runId = /kiln build (\S+):/.exec(result.stdout)?.[1];
  if (runId) runIds.push(runId);
  return ms;
}
const node = () => {
  const started = process.hrtime.bigint();
  spawnSync(process.execPath, ["-e", "0"]);
  return Number(process.hrtime.bigint() - started) / 1e6;
};
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const repeat = (fn) => Array.from({ length: RUNS }, fn);

try {
  time(["build", "-C", graphDir]); // bake once; every later run is a no-op
  const noop = median(repeat(() => time(["build", "-C", graphDir])));
  const start = median(repeat(node));
  const one = median(repeat(() => time(["build", "-C", wideDir, "--only", "a", "--force"])));
  const fourParallel = median(repeat(() => time(["build", "-C", wideDir, "--force", "--parallel", "4"])));
  const fourSerial = median(repeat(() => time(["build", "-C", wideDir, "--force", "--parallel", "1"])));

  console.log(`\nmedian of ${RUNS} runs each, ${new Date().toISOString()}\n`);
  console.log(`  no-op kiln build, 3 unchanged images        ${noop.toFixed(0).padStart(6)} ms`);
  console.log(`  node -e 0 (Node start-up)                   ${start.toFixed(0).padStart(6)} ms`);
  console.log(`  kiln build of 1 image                       ${one.toFixed(0).padStart(6)} ms`);
  console.log(`  kiln build of 4 independent, --parallel 4   ${fourParallel.toFixed(0).padStart(6)} ms`);
  console.log(`  kiln build of 4 independent, --parallel 1   ${fourSerial.toFixed(0).padStart(6)} ms`);
  console.log("\nratios");
  console.log(`  no-op build on top of Node start-up         ${(noop - start).toFixed(0)} ms   (target ≤ 300 ms)`);
  console.log(`  4 images in parallel / 1 image              ${(fourParallel / one).toFixed(2)}×`);
  console.log(`  4 images in parallel / 4 one at a time      ${(fourParallel / fourSerial).toFixed(2)}×`);
} finally {
  for (const runId of runIds) await removeDockerResources(runId);
  rmSync(graphDir, { recursive: true, force: true });
  rmSync(wideDir, { recursive: true, force: true });
}

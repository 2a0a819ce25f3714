#!/usr/bin/env node
// Times Kiln against its peers in one run (machines here are noisy: compare ratios, not absolute times).
//   (a) kiln build of a one-step shell image   (b) docker build --no-cache of the same image
//   (c) kiln validate and kiln --version        (d) Packer's docker builder doing the same bake, if packer is installed
// Usage: pnpm bench [-- --runs 7]
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const cli = join(root, "apps/cli/dist/cli.js");
const runsFlag = process.argv.indexOf("--runs");
const RUNS = runsFlag > 0 ? Number(process.argv[runsFlag + 1]) : 7;
const { ensureFixtureImage, FIXTURE_IMAGE } = await import(join(root, "packages/drivers/docker/dist/testing.js"));
await ensureFixtureImage();

const work = mkdtempSync(join(tmpdir(), "kiln-bench-"));
const STEP = "echo hello > /hello.txt";
const TAG = "kiln-bench/one-step";
writeFileSync(
  join(work, "kiln.yaml"),
  `images:\n  one-step:\n    driver: docker\n    source: ${FIXTURE_IMAGE}\n    provision:\n      - shell: { inline: ["${STEP}"] }\n    tags: ["${TAG}:kiln"]\n`,
);
writeFileSync(join(work, "Dockerfile"), `FROM ${FIXTURE_IMAGE}\nRUN ${STEP}\n`);
writeFileSync(
  join(work, "packer.json"),
  JSON.stringify({
    builders: [{ type: "docker", image: FIXTURE_IMAGE, pull: false, commit: true }],
    provisioners: [{ type: "shell", inline: [STEP] }],
    "post-processors": [{ type: "docker-tag", repository: TAG, tag: "packer" }],
  }),
);

/** Wall time of one command in ms; `inProcess` also reads the bake's own duration from kiln's --json run.end event. */
function run(command, args, env = {}) {
  const started = process.hrtime.bigint();
  const result = spawnSync(command, args, { cwd: work, env: { ...process.env, ...env }, encoding: "utf8" });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} failed (${result.status}):\n${result.stdout}\n${result.stderr}`);
  const end = result.stdout.split("\n").find((line) => line.includes('"type":"run.end"'));
  if (end) inProcess.push(JSON.parse(end).durationMs);
  return ms;
}
const inProcess = [];
const removeImage = (tag) => spawnSync("docker", ["rmi", "-f", tag], { encoding: "utf8" });
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

const cases = [
  {
    name: "kiln build (one shell step)",
    key: "kiln",
    run: () => run(process.execPath, [cli, "build", "-C", work, "--json", "--force"]),
    after: () => removeImage(`${TAG}:kiln`),
  },
  {
    name: "docker build --no-cache",
    key: "docker",
    run: () => run("docker", ["build", "--no-cache", "-q", "-t", `${TAG}:docker`, "."]),
    after: () => removeImage(`${TAG}:docker`),
  },
  { name: "kiln validate", key: "validate", run: () => run(process.execPath, [cli, "validate", "-C", work]) },
  { name: "kiln --version", key: "version", run: () => run(process.execPath, [cli, "--version"]) },
  { name: "node -e 0 (Node start-up)", key: "node", run: () => run(process.execPath, ["-e", "0"]) },
];
const packer = spawnSync("packer", ["version"], { encoding: "utf8" });
if (packer.status === 0) {
  cases.push({
    name: `packer build (docker builder, ${packer.stdout.trim()})`,
    key: "packer",
    run: () => run("packer", ["build", "-color=false", "packer.json"], { CHECKPOINT_DISABLE: "1", PACKER_LOG: "" }),
    after: () => removeImage(`${TAG}:packer`),
  });
}

const results = {};
try {
  // Interleave the cases run by run, so a slow spell on the machine hits every tool alike. The first round warms caches.
  for (let round = 0; round <= RUNS; round++) {
    for (const item of cases) {
      const ms = item.run();
      item.after?.();
      if (round > 0) {
        results[item.key] ??= [];
        results[item.key].push(ms);
      }
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

const medians = Object.fromEntries(Object.entries(results).map(([key, values]) => [key, median(values)]));
console.log(`\nmedian of ${RUNS} runs each (after one warm-up round), ${new Date().toISOString()}\n`);
for (const item of cases) console.log(`  ${item.name.padEnd(52)} ${medians[item.key].toFixed(0).padStart(7)} ms`);
console.log(`  ${"  of which the bake itself (kiln's run.end event)".padEnd(52)} ${median(inProcess.slice(1)).toFixed(0).padStart(7)} ms`);
console.log("\nratios");
console.log(`  kiln build / docker build --no-cache        ${(medians.kiln / medians.docker).toFixed(2)}×   (target ≤ 1.3×)`);
console.log(
  `  kiln bake (in-process) / docker build        ${(median(inProcess.slice(1)) / medians.docker).toFixed(2)}×   (the rest is Node.js start-up and module loading)`,
);
if (medians.packer) console.log(`  kiln build / packer build                   ${(medians.kiln / medians.packer).toFixed(2)}×`);
console.log(
  `  kiln --version / node start-up              ${(medians.version / medians.node).toFixed(2)}×   (${medians.version.toFixed(0)} ms; target ≤ 120 ms)`,
);
console.log(`  kiln validate / node start-up               ${(medians.validate / medians.node).toFixed(2)}×`);

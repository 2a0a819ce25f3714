#!/usr/bin/env node
// Times Kiln's Docker bakes and CLI start-up against `docker build --no-cache` and Packer's docker builder, case by case (issue
// 15; bench/docker-cases.mjs says what each case bakes): one-step, ten-step, file-heavy, startup, parallel; then issue 16's
// fresh-runner, a 3-image project built on a new empty engine with the registry cache against the same without it
// (bench/fleet-cases.mjs); then ec2, an AMI bake through the EC2 emulator against Packer's amazon-ebs (bench/ec2.mjs).
// Machines here are noisy: a case's variants run interleaved round by round (the first round only warms caches), so a slow
// spell hits every tool alike; compare the ratios of medians, not absolute times.
// Usage: node bench/run.mjs [--runs 9] [--only one-step,startup,fresh-runner] [--trace] [--packer /path/to/packer]   (after pnpm build)
//   --trace   after the timed runs, runs each engine-using variant once more through a recording proxy (bench/api-trace.mjs)
//             and lists its Docker API calls by endpoint, and the time before the first call, between calls and after the last
//   --packer  Packer to compare with (default: `packer` on PATH, else Debian's package downloaded once into ~/.cache/kiln/bench;
//             without one the Packer column is skipped)
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { formatTrace, startApiTrace } from "./api-trace.mjs";
import { dockerCases, removeBenchResources } from "./docker-cases.mjs";
import { fleetCases } from "./fleet-cases.mjs";
import { findPacker } from "./packer.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
const cli = join(root, "apps/cli/dist/cli.js");
const { values: flags } = parseArgs({
  options: { runs: { type: "string", default: "9" }, only: { type: "string" }, trace: { type: "boolean" }, packer: { type: "string" } },
});
const RUNS = Number(flags.runs);
if (!Number.isInteger(RUNS) || RUNS < 1) throw new Error(`--runs must be a whole number ≥ 1, not "${flags.runs}"`);
const { ensureFixtureImage, FIXTURE_IMAGE } = await import(join(root, "packages/drivers/docker/dist/testing.js"));
await ensureFixtureImage();

// Kiln's own run-id shape (sortable, short): it names the bench's tags and labels every docker and Packer resource.
const runId = `${new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 13)}-${randomBytes(3).toString("hex")}`;
const work = mkdtempSync(join(tmpdir(), `kiln-bench-${runId}-`));
const controller = new AbortController();
const running = new Set();
/** A bad flag found after the temp dir exists: remove it, then fail. */
const refuse = (message) => {
  rmSync(work, { recursive: true, force: true });
  throw new Error(message);
};

/**
 * Runs a command to its end and times it: ms from spawn until its output closed. Each runs in its own process group, so a
 * Ctrl-C reaches it once, forwarded by us. `always`: runs even after an interrupt (the clean-up's own commands).
 */
function exec(command, args, { cwd = work, env = {}, timeoutMs, always = false }) {
  if (controller.signal.aborted && !always) return Promise.reject(new Error("interrupted"));
  return new Promise((resolve, reject) => {
    const startedAt = performance.now();
    const child = spawn(command, args, {
      cwd,
      env: { ...process.env, ...env },
      detached: true,
      timeout: timeoutMs,
      stdio: ["ignore", "pipe", "pipe"],
    });
    running.add(child);
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk) => {
      stderr += chunk;
    });
    child.on("error", (error) => {
      running.delete(child);
      reject(error);
    });
    child.on("close", (status, signal) => {
      const ms = performance.now() - startedAt;
      running.delete(child);
      if (status === 0) return resolve({ ms, startedAt, stdout, stderr });
      const why = signal ? `killed by ${signal}${signal === "SIGTERM" ? `, after its ${timeoutMs} ms timeout?` : ""}` : `exit ${status}`;
      const error = new Error(`${command} ${args.join(" ")} failed (${why}):\n${stdout.slice(-2000)}\n${stderr.slice(-2000)}`);
      reject(Object.assign(error, { stdout }));
    });
  });
}

const bench = {
  root,
  cli,
  runId,
  work,
  fixture: FIXTURE_IMAGE,
  exec,
  signal: controller.signal,
  kilnRunIds: new Set(),
  projects: new Set(),
};
try {
  bench.packer = findPacker(flags.packer);
} catch (error) {
  refuse(error.message);
}
const allCases = [...dockerCases(bench), ...fleetCases(bench)];
const wanted = flags.only
  ?.split(",")
  .map((name) => name.trim())
  .filter(Boolean);
// The EC2 case (bench/ec2.mjs) runs on its own emulator after the Docker cases, with fewer rounds: one bake takes ≈ 10 s.
const caseNames = [...allCases.map((item) => item.name), "ec2"];
const unknown = wanted?.filter((name) => !caseNames.includes(name)) ?? [];
if (unknown.length > 0) refuse(`--only: no case ${unknown.join(", ")}; the cases are ${caseNames.join(", ")}`);
const cases = wanted ? allCases.filter((item) => wanted.includes(item.name)) : allCases;
const withEc2 = !wanted || wanted.includes("ec2");

// Ctrl-C: stop the running commands (Kiln and Packer clean up after themselves), then remove what the bench made.
let signals = 0;
const onSignal = (signal) => {
  signals += 1;
  if (signals > 1) {
    process.stderr.write(
      `${signal} again: exiting without clean-up; what is left carries the label dev.kiln.build=${runId} or a tag kiln-bench-${runId}/…\n`,
    );
    process.exit(130);
  }
  process.stderr.write(`\n${signal}: stopping, then removing everything the bench created (again: exit at once)\n`);
  controller.abort();
  for (const child of running) child.kill("SIGINT");
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);

const median = (values) => (values.length > 0 ? [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] : undefined);
const ms = (value) => `${value.toFixed(0).padStart(7)} ms`;

/** How many rounds a case counts: --runs, or fewer for a case whose rounds are slow (its `maxRounds`). */
const roundsOf = (item) => Math.min(RUNS, item.maxRounds ?? RUNS);

/** Every variant of the case once per round, round after round; round 0 warms caches and is not counted. */
async function measure(item) {
  const samples = new Map(item.variants.map((variant) => [variant.key, []]));
  for (let round = 0; round <= roundsOf(item); round++) {
    for (const variant of item.variants) {
      if (controller.signal.aborted) throw new Error("interrupted");
      const sample = await variant.run({});
      if (round > 0) samples.get(variant.key).push(sample);
    }
  }
  return samples;
}

/** What Kiln's events say about its samples: the bake's own time (run.end) and each step's, as medians. */
function describeKiln(samples) {
  const bake = median(samples.flatMap((sample) => sample.bakeMs ?? []));
  const names = [...new Set(samples.flatMap((sample) => Object.keys(sample.steps ?? {})))];
  const steps = names.map((name) => `${name} ${median(samples.flatMap((sample) => sample.steps?.[name] ?? [])).toFixed(0)}`);
  return [bake === undefined ? "" : `run.end ${bake.toFixed(0)} ms`, steps.join(", ")].filter(Boolean).join(": ");
}

function judge(ratio, medians) {
  const value = ratio.value(medians);
  if (value === undefined) return undefined;
  const times = ratio.unit === "×";
  // `absolute`: a time of its own against the goal, not one variant's time over another's.
  const sign = ratio.absolute ? "" : value < 0 ? "−" : "+";
  const shown = times ? `${value.toFixed(2)}×` : `${sign}${Math.abs(value).toFixed(0)} ms`;
  if (ratio.max === undefined) return { label: ratio.label, shown, goal: `no goal in issue ${ratio.issue ?? 15}`, verdict: "" };
  if (ratio.absolute) return { label: ratio.label, shown, goal: `goal < ${ratio.max} ms`, verdict: value < ratio.max ? "met" : "NOT MET" };
  return {
    label: ratio.label,
    shown,
    goal: `goal ≤ ${times ? `${ratio.max}×` : `+${ratio.max} ms`}`,
    verdict: value <= ratio.max ? "met" : "NOT MET",
  };
}

const summary = [];
let trace;
let failure;
try {
  if (flags.trace) trace = await startApiTrace();
  console.log(`kiln bench ${runId}, ${new Date().toISOString()}: median of ${RUNS} run(s) per variant, after one warm-up round`);
  if (bench.packer) console.log(`Packer: ${bench.packer.version} (${bench.packer.path})`);
  else {
    console.log("Packer: not found (not on PATH, and Debian's package could not be downloaded): the Packer column is skipped.");
  }
  for (const item of cases) {
    const note = await item.setup();
    const rounds = roundsOf(item) < RUNS ? `; median of ${roundsOf(item)} rounds` : "";
    console.log(`\n== ${item.name}: ${item.title}${note || rounds ? ` (${note ?? ""}${rounds})` : ""}`);
    const samples = await measure(item);
    const medians = {};
    for (const variant of item.variants) {
      medians[variant.key] = median(samples.get(variant.key).map((sample) => sample.ms));
      const described = [describeKiln(samples.get(variant.key)), variant.describe?.(samples.get(variant.key))].filter(Boolean).join("; ");
      console.log(`  ${variant.label.padEnd(48)} ${ms(medians[variant.key])}   ${described}`.trimEnd());
    }
    for (const ratio of item.ratios) {
      const judged = judge(ratio, medians);
      if (!judged) continue;
      summary.push({ case: item.name, ...judged });
      console.log(
        `  ${judged.label.padEnd(48)} ${judged.shown.padStart(10)}   ${judged.goal}${judged.verdict ? `: ${judged.verdict}` : ""}`,
      );
    }
    for (const variant of trace ? item.variants.filter((each) => each.traced) : []) {
      trace.begin();
      const sample = await variant.run({ DOCKER_HOST: trace.host });
      console.log(`\n  Docker API calls of ${variant.label} (one run through the recording proxy, ${ms(sample.ms).trim()}):`);
      for (const line of formatTrace(trace.end(sample.startedAt, sample.startedAt + sample.ms))) console.log(line);
    }
  }
  if (withEc2) {
    console.log(`\n== ec2: examples/ec2 (one shell step, verified from a new instance) / Packer amazon-ebs, through the EC2 emulator`);
    const { benchEc2 } = await import("./ec2.mjs");
    const ec2 = await benchEc2({ runs: Math.max(3, Math.ceil(RUNS / 2)), packer: bench.packer?.path ?? "packer" });
    summary.push(...ec2.summary);
  }
  console.log("\n== summary: ratios of medians against the goals of issues 15 and 16");
  for (const row of summary) {
    console.log(
      `  ${row.case.padEnd(12)} ${row.label.padEnd(48)} ${row.shown.padStart(10)}   ${row.goal}${row.verdict ? `: ${row.verdict}` : ""}`,
    );
  }
} catch (error) {
  failure = error;
} finally {
  await trace?.close();
  // The registries and engines cases started: stopped before the images of this engine go, whatever happened.
  for (const item of cases) {
    await item.teardown?.().catch((error) => console.error(`clean-up of ${item.name} failed: ${error.message}`));
  }
  try {
    const removed = await removeBenchResources(bench);
    const left = removed.left.length > 0 ? `; could not remove ${removed.left.join(", ")}` : "";
    console.log(`\nclean-up: removed the images of run ${runId} and ${removed.containers} leftover container(s)${left}`);
  } catch (error) {
    console.error(`clean-up failed (${error.message}): look for label dev.kiln.build=${runId} and tags kiln-bench-${runId}/…`);
  }
  rmSync(work, { recursive: true, force: true });
}
if (controller.signal.aborted) process.exit(130);
if (failure) {
  console.error(failure);
  process.exit(1);
}

#!/usr/bin/env node
// An AMI bake through the local EC2 emulator: examples/ec2 (shell provisioner + verify from a new instance), broken down by
// step, with the EC2 API calls one bake makes — waiters poll with a delay, so the Describe* counts stay small — and, when
// Packer is found, Packer's amazon-ebs builder baking bench/ec2/packer.json against the same emulator in the same run, polling
// every 2 s as Kiln does by default. Kiln and Packer alternate (which goes first swaps every round), so a busy spell on the
// machine hits both. The verify instance's own API calls are those of `kiln verify <the AMI>`, counted once at the end.
// Usage: node bench/ec2.mjs [--runs 3] [--packer /path/to/packer] [--summary]   (after pnpm build; needs the Docker engine)
//   --packer   Packer to compare with (default: `packer` on PATH; without one the Packer column is skipped)
//   --summary  print only the ratio lines against issue 15's goal, in bench/run.mjs's summary format
// From another bench: `const { summary } = await benchEc2({ runs, packer, log: () => {} })`; each row has
// { case, label, shown, goal, verdict } like bench/run.mjs's summary rows.
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { findPacker } from "./packer.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
const cli = join(root, "apps/cli/dist/cli.js");
const example = join(root, "examples/ec2");
const packerTemplate = join(root, "bench/ec2/packer.json");

const env = {
  ...process.env,
  AWS_ACCESS_KEY_ID: "AKIDKILNBENCH",
  AWS_SECRET_ACCESS_KEY: "kiln-bench",
  AWS_EC2_METADATA_DISABLED: "true",
  CHECKPOINT_DISABLE: "1",
};

/** Issue 15's goal for the wall-time ratio, and for Kiln's API calls against Packer's plus the verify instance's own. */
const GOALS = { wall: 1.0, calls: 1.0 };

/** Runs a command without blocking this process (the emulator answers from its event loop): wall time and stdout. */
function run(command, args, cwd) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(command, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    // A hung bake fails the bench instead of stalling it.
    const timer = setTimeout(() => child.kill("SIGTERM"), 300_000);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("close", (code) => {
      clearTimeout(timer);
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (code === 0) resolve({ ms, stdout });
      else reject(new Error(`${command} ${args.join(" ")} failed (${code}):\n${stdout.slice(-3000)}\n${stderr.slice(-3000)}`));
    });
  });
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const total = (calls) => Object.values(calls).reduce((sum, n) => sum + n, 0);

/** A ratio against its goal, shaped like bench/run.mjs's summary rows. */
function judged(label, value, max) {
  const shown = `${value.toFixed(2)}×`;
  if (max === undefined) return { case: "ec2", label, shown, goal: "no goal in issue 15", verdict: "" };
  return { case: "ec2", label, shown, goal: `goal ≤ ${max.toFixed(1)}×`, verdict: value <= max ? "met" : "NOT MET" };
}

/** One summary line, as bench/run.mjs prints them. */
export function formatSummaryRow(row) {
  return `  ${row.case.padEnd(11)} ${row.label.padEnd(48)} ${row.shown.padStart(10)}   ${row.goal}${row.verdict ? `: ${row.verdict}` : ""}`;
}

/**
 * Bakes examples/ec2 with `kiln build --force` and (when Packer runs) bench/ec2/packer.json with Packer, `runs` times each,
 * interleaved, against one emulator; logs the report through `log` and returns the summary rows and the raw samples.
 */
export async function benchEc2({ runs = 3, packer = "packer", log = console.log } = {}) {
  const { startEmulator } = await import(join(root, "packages/ec2-emulator/dist/index.js"));
  const packerVersion = spawnSync(packer, ["version"], { encoding: "utf8", env, timeout: 30_000 });
  const withPacker = packerVersion.status === 0 && existsSync(packerTemplate);
  // The emulator's default transitions (1 s per state change) stand in for EC2's, which take tens of seconds.
  const emulator = await startEmulator({ port: 0 });

  /** API calls made while `work` ran, per action. */
  async function counted(work) {
    const before = emulator.callCounts();
    const result = await work();
    const calls = Object.fromEntries(
      Object.entries(emulator.callCounts())
        .map(([action, n]) => [action, n - (before[action] ?? 0)])
        .filter(([, n]) => n > 0),
    );
    return { ...result, calls };
  }

  const kilnArgs = (...args) => [cli, ...args, "--json", "--var", `endpoint=${emulator.endpoint}`];
  async function bakeKiln() {
    const kiln = await counted(() => run(process.execPath, kilnArgs("build", "--force"), example));
    const events = kiln.stdout
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line));
    const done = events.find((event) => event.type === "image.done");
    if (!done) throw new Error(`no image.done event:\n${kiln.stdout.slice(-2000)}`);
    const steps = Object.fromEntries(done.steps.map((step) => [step.step, step.durationMs]));
    return { ms: kiln.ms, steps, calls: kiln.calls, amiId: done.artifact.id };
  }
  async function bakePacker() {
    const args = ["build", "-color=false", "-var", `endpoint=${emulator.endpoint}`, "-var", "poll_delay_seconds=2", packerTemplate];
    const baked = await counted(() => run(packer, args, root));
    return { ms: baked.ms, calls: baked.calls };
  }

  const kilnRuns = [];
  const packerRuns = [];
  let verifyCalls;
  try {
    for (let round = 0; round < runs; round++) {
      // Who goes first swaps every round: the machine is shared, and a slow spell should not always hit the same tool.
      if (withPacker && round % 2 === 1) packerRuns.push(await bakePacker());
      kilnRuns.push(await bakeKiln());
      if (withPacker && round % 2 === 0) packerRuns.push(await bakePacker());
    }
    // The verify instance on its own: what `kiln verify` of the last AMI calls (launch, checks, removal).
    verifyCalls = (await counted(() => run(process.execPath, kilnArgs("verify", kilnRuns.at(-1).amiId), example))).calls;
  } finally {
    await emulator.stop();
  }

  const row = (label, value) => log(`  ${label.padEnd(50)} ${value}`);
  const ms = (value) => `${value.toFixed(0).padStart(7)} ms`;
  log(`\nexamples/ec2 through the EC2 emulator, median of ${runs} bakes, ${new Date().toISOString()}\n`);
  const kilnMs = median(kilnRuns.map((r) => r.ms));
  row("kiln build (wall, incl. Node start-up)", ms(kilnMs));
  for (const step of Object.keys(kilnRuns[0].steps)) row(`  ${step}`, ms(median(kilnRuns.map((r) => r.steps[step] ?? 0))));
  const packerMs = withPacker ? median(packerRuns.map((r) => r.ms)) : undefined;
  if (withPacker) row(`packer build (amazon-ebs, ${packerVersion.stdout.trim()})`, ms(packerMs));

  log("\nEC2 API calls per bake (last bake; verify: `kiln verify` of its AMI)");
  const kilnCalls = kilnRuns.at(-1).calls;
  const packerCalls = packerRuns.at(-1)?.calls ?? {};
  const actions = [...new Set([...Object.keys(kilnCalls), ...Object.keys(packerCalls), ...Object.keys(verifyCalls)])].sort();
  const columns = (values) => values.map((value) => String(value).padStart(8)).join("");
  row("action", columns(["kiln", "verify", ...(withPacker ? ["packer"] : [])]));
  for (const action of actions)
    row(action, columns([kilnCalls[action] ?? 0, verifyCalls[action] ?? 0, ...(withPacker ? [packerCalls[action] ?? 0] : [])]));
  row("total", columns([total(kilnCalls), total(verifyCalls), ...(withPacker ? [total(packerCalls)] : [])]));

  const summary = [];
  if (withPacker) {
    summary.push(judged("kiln build / packer build (wall)", kilnMs / packerMs, GOALS.wall));
    // Packer has no verify step: compare the same work too — Kiln's bake minus its verify step.
    const withoutVerify = median(kilnRuns.map((r) => r.ms - (r.steps.verify ?? 0)));
    summary.push(judged("kiln build without verify / packer build (wall)", withoutVerify / packerMs));
    summary.push(
      judged("kiln API calls / (packer's + verify instance's)", total(kilnCalls) / (total(packerCalls) + total(verifyCalls)), GOALS.calls),
    );
  }
  log("\nratios");
  if (withPacker) for (const each of summary) log(formatSummaryRow(each));
  else row(`(Packer not found at "${packer}" or bench/ec2/packer.json missing: no peer)`, "");
  return { summary, kilnRuns, packerRuns, verifyCalls };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values: flags } = parseArgs({
    options: { runs: { type: "string", default: "3" }, packer: { type: "string" }, summary: { type: "boolean" } },
  });
  const runs = Number(flags.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a whole number ≥ 1, not "${flags.runs}"`);
  // --packer PATH, else `packer` on PATH, else Debian's package downloaded once (bench/packer.mjs).
  const packer = findPacker(flags.packer)?.path ?? "packer";
  const { summary } = await benchEc2({ runs, packer, log: flags.summary ? () => {} : console.log });
  if (flags.summary) for (const each of summary) console.log(formatSummaryRow(each));
}

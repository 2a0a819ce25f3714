#!/usr/bin/env node
// An AMI bake through the local EC2 emulator: examples/ec2 (shell provisioner + verify from a new instance), broken down by
// step, with the EC2 API calls one bake makes — waiters poll with a delay, so the Describe* counts stay small — and, when
// `packer` is installed, Packer's amazon-ebs builder baking bench/ec2/packer.json against the same emulator in the same run, polling
// every 2 s as Kiln does by default.
// Usage: node bench/ec2.mjs [--runs 3]   (after pnpm build; needs the Docker engine)
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const cli = join(root, "apps/cli/dist/cli.js");
const example = join(root, "examples/ec2");
const packerTemplate = join(root, "bench/ec2/packer.json");
const runsFlag = process.argv.indexOf("--runs");
const RUNS = runsFlag > 0 ? Number(process.argv[runsFlag + 1]) : 3;
const { startEmulator } = await import(join(root, "packages/ec2-emulator/dist/index.js"));

// The emulator's default transitions (1 s per state change) stand in for EC2's, which take tens of seconds.
const emulator = await startEmulator({ port: 0 });
const env = {
  ...process.env,
  AWS_ACCESS_KEY_ID: "AKIDKILNBENCH",
  AWS_SECRET_ACCESS_KEY: "kiln-bench",
  AWS_EC2_METADATA_DISABLED: "true",
  CHECKPOINT_DISABLE: "1",
};

/** Runs a command without blocking this process (the emulator answers from its event loop): wall time and stdout. */
function run(command, args, cwd) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(command, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("close", (code) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (code === 0) resolve({ ms, stdout });
      else reject(new Error(`${command} ${args.join(" ")} failed (${code}):\n${stdout.slice(-3000)}\n${stderr.slice(-3000)}`));
    });
  });
}

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

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const kilnRuns = [];
const packerRuns = [];
const packerVersion = spawnSync("packer", ["version"], { encoding: "utf8" });
const withPacker = packerVersion.status === 0 && existsSync(packerTemplate);

try {
  for (let round = 0; round < RUNS; round++) {
    const kiln = await counted(() =>
      run(process.execPath, [cli, "build", "--force", "--json", "--var", `endpoint=${emulator.endpoint}`], example),
    );
    const events = kiln.stdout
      .split("\n")
      .filter(Boolean)
      .map((line) => JSON.parse(line));
    const done = events.find((event) => event.type === "image.done");
    if (!done) throw new Error(`no image.done event:\n${kiln.stdout.slice(-2000)}`);
    kilnRuns.push({ ms: kiln.ms, steps: Object.fromEntries(done.steps.map((step) => [step.step, step.durationMs])), calls: kiln.calls });
    if (withPacker) {
      const packer = await counted(() =>
        run(
          "packer",
          ["build", "-color=false", "-var", `endpoint=${emulator.endpoint}`, "-var", "poll_delay_seconds=2", packerTemplate],
          root,
        ),
      );
      packerRuns.push({ ms: packer.ms, calls: packer.calls });
    }
  }
} finally {
  await emulator.stop();
}

const total = (calls) => Object.values(calls).reduce((sum, n) => sum + n, 0);
const row = (label, value) => console.log(`  ${label.padEnd(50)} ${value}`);
console.log(`\nexamples/ec2 through the EC2 emulator, median of ${RUNS} bakes, ${new Date().toISOString()}\n`);
row(
  "kiln build (wall, incl. Node start-up)",
  `${median(kilnRuns.map((r) => r.ms))
    .toFixed(0)
    .padStart(7)} ms`,
);
for (const step of Object.keys(kilnRuns[0].steps))
  row(
    `  ${step}`,
    `${median(kilnRuns.map((r) => r.steps[step] ?? 0))
      .toFixed(0)
      .padStart(7)} ms`,
  );
if (withPacker)
  row(
    `packer build (amazon-ebs, ${packerVersion.stdout.trim()})`,
    `${median(packerRuns.map((r) => r.ms))
      .toFixed(0)
      .padStart(7)} ms`,
  );

console.log("\nEC2 API calls per bake (last bake)");
const actions = [...new Set([...Object.keys(kilnRuns.at(-1).calls), ...Object.keys(packerRuns.at(-1)?.calls ?? {})])].sort();
row("action", `${"kiln".padStart(7)}${withPacker ? "  packer".padStart(9) : ""}`);
for (const action of actions)
  row(
    action,
    `${String(kilnRuns.at(-1).calls[action] ?? 0).padStart(7)}${withPacker ? String(packerRuns.at(-1).calls[action] ?? 0).padStart(9) : ""}`,
  );
row("total", `${String(total(kilnRuns.at(-1).calls)).padStart(7)}${withPacker ? String(total(packerRuns.at(-1).calls)).padStart(9) : ""}`);

console.log("\nratios");
if (withPacker) {
  row("kiln build / packer build (wall)", `${(median(kilnRuns.map((r) => r.ms)) / median(packerRuns.map((r) => r.ms))).toFixed(2)}×`);
  // Packer has no verify step: compare the same work too — Kiln's bake minus its verify instance.
  const withoutVerify = median(kilnRuns.map((r) => r.ms - (r.steps.verify ?? 0)));
  row("kiln build without verify / packer build", `${(withoutVerify / median(packerRuns.map((r) => r.ms))).toFixed(2)}×`);
  row("kiln API calls / packer API calls", `${(total(kilnRuns.at(-1).calls) / total(packerRuns.at(-1).calls)).toFixed(2)}×`);
} else {
  row("(packer not installed or bench/ec2/packer.json missing: no peer)", "");
}

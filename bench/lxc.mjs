#!/usr/bin/env node
// An LXC bake broken down by step, with the source cached and not, against the same bake done by hand with the lxc tools:
//   (a) Kiln: a Debian system container (debootstrap minbase + systemd-sysv + python3), one shell step, captured; in-process
//   (b) by hand: tar -x the same rootfs, write the config, lxc-start, wait for systemd, lxc-attach the step, lxc-stop, tar -c
//   (c) once: Kiln with an empty cache, so the debootstrap build is part of the bake
// Usage: node bench/lxc.mjs [--runs 5]   (after pnpm build, as root, with scripts/prepare-lxc.sh run)
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const runsFlag = process.argv.indexOf("--runs");
const RUNS = runsFlag > 0 ? Number(process.argv[runsFlag + 1]) : 5;
const dist = (path) => import(join(root, path));
const { BuildRun, loadProject } = await dist("packages/core/dist/engine.js");
const { default: lxc } = await dist("packages/drivers/lxc/dist/index.js");
const { default: shell } = await dist("packages/provisioners/shell/dist/index.js");
const { buildRootfs, findRootfs, resolveRecipe } = await dist("packages/debootstrap/dist/index.js");

const work = mkdtempSync(join(tmpdir(), "kiln-bench-lxc-"));
process.env.KILN_STATE_DIR = join(work, "state");
const RECIPE = { suite: "bookworm", variant: "minbase", include: ["systemd-sysv", "python3"] };
const STEP = "echo hello > /hello.txt";
writeFileSync(
  join(work, "kiln.yaml"),
  JSON.stringify({
    images: { box: { driver: "lxc", source: { debootstrap: RECIPE }, network: "none", provision: [{ shell: { inline: [STEP] } }] } },
  }),
);

function sh(command, args) {
  const result = spawnSync(command, args, { encoding: "utf8", maxBuffer: 64 << 20 });
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} failed (${result.status}):\n${result.stderr}`);
  return result.stdout;
}

async function kilnBake() {
  const project = await loadProject(join(work, "kiln.yaml"), { plugins: { registry: { drivers: { lxc }, provisioners: { shell } } } });
  const events = [];
  const started = process.hrtime.bigint();
  const result = await new BuildRun({ project, kilnVersion: "bench", force: true, onEvent: (e) => events.push(e) }).run();
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (!result.ok) throw new Error(`kiln bake failed: ${JSON.stringify(result.records[0]?.error)}`);
  const done = events.find((event) => event.type === "image.done");
  await lxc({ cwd: work, stateDir: join(work, "state", "driver-lxc"), cacheDir: work, log: console }).remove(result.records[0].artifact);
  return { total: ms, steps: Object.fromEntries(done.steps.map((step) => [step.step, step.durationMs])) };
}

/** The same bake with the lxc tools alone, as a person would script it. */
function byHand(tarball) {
  const started = process.hrtime.bigint();
  const name = `kiln-bench-hand-${process.pid}`;
  const dir = join("/var/lib/lxc", name);
  try {
    mkdirSync(join(dir, "rootfs"), { recursive: true });
    sh("tar", ["--numeric-owner", "-xpf", tarball, "-C", join(dir, "rootfs")]);
    const config = [
      "lxc.include = /usr/share/lxc/config/debian.common.conf",
      `lxc.rootfs.path = dir:${dir}/rootfs`,
      `lxc.uts.name = box`,
      "lxc.net.0.type = empty",
      "",
    ];
    writeFileSync(join(dir, "config"), config.join("\n"));
    sh("lxc-start", ["-n", name, "-d"]);
    for (let i = 0; i < 400; i++) {
      const state = spawnSync("lxc-attach", ["-n", name, "--clear-env", "--", "systemctl", "is-system-running", "--wait"], {
        encoding: "utf8",
      });
      if (/running|degraded/.test(state.stdout)) break;
    }
    sh("lxc-attach", ["-n", name, "--clear-env", "--", "/bin/sh", "-c", STEP]);
    sh("lxc-stop", ["-n", name]);
    sh("tar", ["--numeric-owner", "--one-file-system", "-C", join(dir, "rootfs"), "-cf", join(work, "hand.tar"), "."]);
  } finally {
    spawnSync("lxc-stop", ["-k", "-n", name]);
    spawnSync("lxc-destroy", ["-n", name]);
    rmSync(dir, { recursive: true, force: true });
    rmSync(join(work, "hand.tar"), { force: true });
  }
  return Number(process.hrtime.bigint() - started) / 1e6;
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
try {
  // (c) once, with an empty debootstrap cache: the source is built as part of the bake.
  process.env.KILN_CACHE_DIR = join(work, "cold-cache");
  const cold = await kilnBake();
  delete process.env.KILN_CACHE_DIR;
  const recipe = await resolveRecipe(RECIPE);
  const tarball = ((await findRootfs(recipe)) ?? (await buildRootfs(recipe, { signal: new AbortController().signal, onOutput: () => {} })))
    .tarball;

  const kiln = [];
  const hand = [];
  for (let round = 0; round <= RUNS; round++) {
    const bake = await kilnBake();
    const manual = byHand(tarball);
    if (round === 0) continue; // warm-up
    kiln.push(bake);
    hand.push(manual);
  }
  const steps = Object.keys(kiln[0].steps);
  console.log(`\nLXC ${sh("lxc-start", ["--version"]).trim()}; median of ${RUNS} runs (after one warm-up), ${new Date().toISOString()}\n`);
  console.log(`  ${"step".padEnd(12)} ${"source cached".padStart(14)} ${"not cached (1 run)".padStart(20)}`);
  for (const step of steps) {
    const warm = median(kiln.map((run) => run.steps[step] ?? 0));
    console.log(`  ${step.padEnd(12)} ${`${warm.toFixed(0)} ms`.padStart(14)} ${`${(cold.steps[step] ?? 0).toFixed(0)} ms`.padStart(20)}`);
  }
  const total = median(kiln.map((run) => run.total));
  console.log(`  ${"whole bake".padEnd(12)} ${`${total.toFixed(0)} ms`.padStart(14)} ${`${cold.total.toFixed(0)} ms`.padStart(20)}`);
  console.log(`\n  by hand with the lxc tools (source cached)  ${median(hand).toFixed(0)} ms`);
  console.log(`  Kiln / by hand                              ${(total / median(hand)).toFixed(2)}×`);
} finally {
  rmSync(work, { recursive: true, force: true });
}

// The fleet case of issue 16, run by bench/run.mjs after the Docker cases:
//   fresh-runner  a 3-image project (base from a source image in a registry, app and api from base) built on a new, empty engine
//                 (a fresh CI runner) with the registry cache, against the same project without it
// The bench starts its own registry (Debian's docker-registry on 127.0.0.1) and a new engine per timed build (startSecondEngine:
// its own dockerd, socket and data root, removed when it stops); starting and stopping them is not timed. Every resource carries
// the bench's run id: Kiln's artefacts on this engine the project name kiln-bench-<run id>-fresh-runner, the source pushed to the
// registry the repository kiln-bench-<run id>/fixture. The registry and the engines keep nothing: they are stopped and their
// directories removed.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { kilnBuildEvents } from "./docker-cases.mjs";

const DOCKER_TIMEOUT_MS = 5 * 60_000;
/** Each round starts two engines and bakes three images once without the cache: five rounds say enough. */
const MAX_ROUNDS = 5;
/** Issue 16: "On a fresh engine, `kiln build` of an unchanged 3-image project with a registry cache … takes < 2 s plus pull time". */
const FRESH_BUILD_GOAL_MS = 2000;
const IMAGES = ["base", "app", "api"];

/** The cases, in the order they run. `bench` is run.mjs's context: root, cli, runId, work, fixture, exec, signal, projects. */
export function fleetCases(bench) {
  return [freshRunner(bench)];
}

/** The testing helpers of the Docker driver (its dist, built by `pnpm build`): registry, second engine. */
const dockerTesting = (bench) => import(join(bench.root, "packages/drivers/docker/dist/testing.js"));

/**
 * base: a user and a few files on the source image; app and api on base, each with real work of its own. Every image is verified
 * (only verified artefacts are published). `registry` undefined: the project has no registry cache.
 */
function projectFile(name, source, registry) {
  const shell = (step) => `      - shell: { inline: ["${step}"] }\n`;
  const image = (image, from, steps) =>
    `  ${image}:\n    driver: docker\n    ${from}\n    provision:\n${steps.map(shell).join("")}` +
    `    verify: { checks: [{ file: /etc/kiln-bench-${image} }] }\n`;
  const files = (image) => `mkdir -p /srv/${image} && for i in $(seq 1 200); do seq 1 $i > /srv/${image}/file-$i; done`;
  return [
    `project: ${name}`,
    ...(registry ? [`defaults:\n  docker: { registry: "${registry}" }`] : []),
    "images:",
    image("base", `source: ${source}`, [
      "useradd --create-home --shell /bin/sh service",
      files("base"),
      "echo base > /etc/kiln-bench-base",
    ]) +
      image("app", "from: base", [files("app"), "echo app > /etc/kiln-bench-app"]) +
      image("api", "from: base", ["useradd --create-home --shell /bin/sh api", files("api"), "echo api > /etc/kiln-bench-api"]),
  ].join("\n");
}

/** What a run's events say: images baked and cached, and what the engine pulled (the driver logs "pulling <reference>"). */
function outcome(events) {
  const names = (type) => events.filter((event) => event.type === type).map((event) => event.image);
  const pulls = events.filter((event) => event.type === "log" && /^pulling /.test(event.message)).map((event) => event.message.slice(8));
  return { baked: names("image.done"), cached: names("image.cached"), failed: names("image.failed"), pulls };
}

function freshRunner(bench) {
  const dir = join(bench.work, "fresh-runner");
  const name = `kiln-bench-${bench.runId}-fresh-runner`;
  const uncachedName = `${name}-uncached`;
  const engines = new Set();
  let registry;
  let source;
  let testing;
  let checkouts = 0;

  /**
   * One `kiln build --json` on a new engine in a fresh checkout (kiln.yaml alone, no manifest), timed; the engine's start and
   * stop are not. Fails unless the build did what `expect` says, so a cache that silently misses fails the bench.
   */
  const onFreshEngine = (file, expect) => async () => {
    checkouts += 1;
    const checkout = join(dir, `checkout-${checkouts}`);
    mkdirSync(checkout, { recursive: true });
    writeFileSync(join(checkout, "kiln.yaml"), file());
    const engine = await testing.startSecondEngine();
    engines.add(engine);
    try {
      const { result, events } = await kilnBuildEvents(bench, checkout, [], { DOCKER_HOST: engine.host });
      const seen = outcome(events);
      const counts = `${seen.baked.length} baked (${seen.baked}), ${seen.cached.length} cached (${seen.cached})`;
      if (seen.baked.length !== expect.baked || seen.cached.length !== expect.cached) {
        throw new Error(`fresh-runner: kiln build on a fresh engine: ${counts}; expected ${expect.baked} baked, ${expect.cached} cached`);
      }
      // The engine's own word too: an image store that is not empty after a cached build means something was pulled.
      const held = (await engine.api.listImages({ all: true })).flatMap((image) => image.RepoTags ?? image.RepoDigests ?? [image.Id]);
      const end = events.find((event) => event.type === "run.end");
      return { ms: result.ms, startedAt: result.startedAt, bakeMs: end?.durationMs, steps: bakeTimes(events), pulls: seen.pulls, held };
    } finally {
      engines.delete(engine);
      await engine.stop();
    }
  };

  return {
    name: "fresh-runner",
    title: "3 images (base, app and api on base) on a new empty engine: with the registry cache / without it",
    maxRounds: MAX_ROUNDS,
    async setup() {
      testing = await dockerTesting(bench);
      registry = await testing.startRegistry();
      // The source lives in the registry, as debian:bookworm lives on Docker Hub: a fresh runner has to pull it to bake.
      source = `${registry.address}/kiln-bench-${bench.runId}/fixture:1`;
      await bench.exec("docker", ["tag", bench.fixture, source], { timeoutMs: DOCKER_TIMEOUT_MS });
      await bench.exec("docker", ["push", "-q", source], { timeoutMs: DOCKER_TIMEOUT_MS });
      bench.projects.add(name);
      bench.projects.add(uncachedName);
      // Baked once on this engine, which publishes each artefact under its bake key: what every fresh runner then finds.
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, "kiln.yaml"), projectFile(name, source, `${registry.address}/kiln-bench-${bench.runId}`));
      const { result: published, events } = await kilnBuildEvents(bench, dir);
      const seen = outcome(events);
      if (seen.baked.length !== IMAGES.length) throw new Error(`fresh-runner: the publishing build baked ${seen.baked}, not all 3 images`);
      return `registry ${registry.address}; baked and published once on this engine in ${(published.ms / 1000).toFixed(1)} s`;
    },
    variants: [
      {
        key: "cached",
        label: "kiln build with the registry cache",
        run: onFreshEngine(() => projectFile(name, source, `${registry.address}/kiln-bench-${bench.runId}`), { baked: 0, cached: 3 }),
        describe: (samples) => {
          const pulled = [...new Set(samples.flatMap((sample) => [...sample.pulls, ...sample.held]))];
          return pulled.length > 0 ? `PULLED ${pulled.join(", ")}` : "3 cached, 0 baked, nothing pulled";
        },
      },
      {
        key: "uncached",
        label: "kiln build without it (bakes all 3)",
        run: onFreshEngine(() => projectFile(uncachedName, source), { baked: 3, cached: 0 }),
        describe: (samples) => `3 baked; pulled ${[...new Set(samples.flatMap((sample) => sample.pulls.map(repository)))].join(", ")}`,
      },
    ],
    ratios: [
      {
        label: "with the registry cache / without it",
        unit: "×",
        issue: 16,
        value: (m) => (m.cached === undefined || m.uncached === undefined ? undefined : m.cached / m.uncached),
      },
      {
        label: "with the registry cache, on a fresh engine",
        unit: "ms",
        absolute: true,
        issue: 16,
        max: FRESH_BUILD_GOAL_MS,
        value: (m) => m.cached,
      },
    ],
    async teardown() {
      const stops = [...engines].map((engine) => engine.stop());
      engines.clear();
      if (registry) stops.push(registry.stop());
      if (source) stops.push(bench.exec("docker", ["rmi", source], { timeoutMs: DOCKER_TIMEOUT_MS, always: true }).catch(() => {}));
      await Promise.all(stops);
    },
  };
}

/**
 * Where a bake's time goes: each baked image's own time, and base's launch, which holds the pull of the source. app and api bake
 * at once, so they add up to more than the run.
 */
function bakeTimes(events) {
  const times = {};
  for (const event of events.filter((each) => each.type === "image.done")) {
    if (event.image === "base") {
      const launch = event.steps.filter((step) => step.step === "launch").reduce((sum, step) => sum + step.durationMs, 0);
      times["base launch (the pull)"] = launch;
    }
    times[event.image] = event.durationMs;
  }
  return times;
}

/** `host/repo@sha256:…` or `host/repo:tag` → `host/repo`: the samples' pulls, once each. */
const repository = (reference) => reference.replace(/@sha256:[0-9a-f]+$/, "").replace(/:[^:/]+$/, "");

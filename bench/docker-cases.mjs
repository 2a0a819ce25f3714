// The Docker speed cases of issue 15, each the same image baked by Kiln, `docker build --no-cache` and Packer's docker builder
// (when Packer is there), all from the Debian fixture image:
//   one-step    one shell step; also the bake in-process through @kiln/core/engine's BuildRun (no CLI start-up)
//   ten-step    10 shell steps / a Dockerfile with 10 RUNs / 10 Packer shell provisioners
//   file-heavy  a 200 MiB tree of 5,000 files uploaded by the file provisioner / Dockerfile COPY / Packer's file provisioner
//   startup     node -e 0, kiln --version, kiln validate, kiln plan, a no-op kiln build of 3 unchanged images (and packer version)
//   parallel    4 independent images at once (kiln --parallel 4, 4 docker builds, packer -parallel-builds=4) against one
// Every resource carries the bench's run id: docker and Packer images and containers the label dev.kiln.build=<run id> and a tag
// under kiln-bench-<run id>/; Kiln's the project name kiln-bench-<run id>-<case> (label dev.kiln.project) and their own run ids.
import { createCipheriv, createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const BUILD_LABEL = "dev.kiln.build";
const PROJECT_LABEL = "dev.kiln.project";
const BAKE_TIMEOUT_MS = 10 * 60_000;
const START_TIMEOUT_MS = 60_000;

/** The cases, in the order they run. `bench` is run.mjs's context: root, cli, runId, work, fixture, packer, exec, signal. */
export function dockerCases(bench) {
  return [oneStep(bench), tenStep(bench), fileHeavy(bench), startup(bench), parallel(bench)];
}

const tagPrefix = (bench) => `kiln-bench-${bench.runId}`;
const projectName = (bench, name) => `kiln-bench-${bench.runId}-${name}`;

/** `a / b` as a ratio of medians, with the issue's goal (undefined: the issue sets none). */
const ratio = (label, over, under, max) => ({
  label,
  unit: "×",
  max,
  value: (m) => (m[over] === undefined || m[under] === undefined ? undefined : m[over] / m[under]),
});
/** `a − b` in ms. */
const extra = (label, over, under, max) => ({
  label,
  unit: "ms",
  max,
  value: (m) => (m[over] === undefined || m[under] === undefined ? undefined : m[over] - m[under]),
});

function kilnProject(bench, dir, name, images) {
  mkdirSync(dir, { recursive: true });
  const body = Object.entries(images).map(
    ([image, lines]) => `  ${image}:\n    driver: docker\n${lines.map((line) => `    ${line}\n`).join("")}`,
  );
  writeFileSync(join(dir, "kiln.yaml"), `project: ${projectName(bench, name)}\nimages:\n${body.join("")}`);
  bench.projects.add(projectName(bench, name));
}

/**
 * A Packer template: one docker builder per name, each committed with the bench's label and tagged. The run command is
 * Packer's default plus the label, so a build container left by an interrupted Packer is found and removed too.
 */
function packerTemplate(bench, dir, repository, names, provisioners) {
  const runCommand = ["-d", "-i", "-t", "--label", `${BUILD_LABEL}=${bench.runId}`, "--entrypoint=/bin/sh", "--", "{{.Image}}"];
  const template = {
    builders: names.map((name) => ({
      type: "docker",
      name,
      image: bench.fixture,
      pull: false,
      commit: true,
      run_command: runCommand,
      changes: [`LABEL ${BUILD_LABEL}=${bench.runId}`],
    })),
    provisioners,
    "post-processors": names.map((name) => [{ type: "docker-tag", repository, tag: `packer-${name}`, only: [name] }]),
  };
  writeFileSync(join(dir, "packer.json"), JSON.stringify(template, null, 2));
}

/** Runs `kiln build --json` and removes what it baked; the sample carries the bake's own time and its steps' from the events. */
/** `kiln build -C dir --json …`, timed, with its events; a failed build's run id is recorded too, so clean-up finds its images. */
export async function kilnBuildEvents(bench, dir, args = [], env = {}) {
  try {
    const result = await bench.exec(process.execPath, [bench.cli, "build", "-C", dir, "--json", ...args], {
      env,
      timeoutMs: BAKE_TIMEOUT_MS,
    });
    return { result, events: eventsOf(result.stdout, bench) };
  } catch (error) {
    eventsOf(error.stdout ?? "", bench);
    throw error;
  }
}

async function kilnBuild(bench, dir, args, env, { expectBaked = true } = {}) {
  const { result, events } = await kilnBuildEvents(bench, dir, args, env);
  const baked = events.filter((event) => event.type === "image.done");
  if (!expectBaked && baked.length > 0)
    throw new Error(`kiln build in ${dir} baked ${baked.map((e) => e.image)}: it should have been a no-op`);
  await removeImages(
    bench,
    baked.map((event) => event.artifact.id),
  );
  const end = events.find((event) => event.type === "run.end");
  return {
    ms: result.ms,
    startedAt: result.startedAt,
    bakeMs: end?.durationMs,
    steps: baked.length === 1 ? stepTotals(baked[0].steps) : undefined,
  };
}

function eventsOf(stdout, bench) {
  const events = stdout
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line));
  for (const event of events) if (event.type === "run.start") bench.kilnRunIds.add(event.runId);
  return events;
}

/** Step name → total ms (ten provision steps add up to one "provision"). */
function stepTotals(steps) {
  const totals = {};
  for (const step of steps) totals[step.step] = (totals[step.step] ?? 0) + step.durationMs;
  return totals;
}

/**
 * The bake without the CLI: BuildRun from @kiln/core/engine in this process, the project loaded once (not timed). A traced
 * run loads the project again so its Docker client is made while DOCKER_HOST points at the proxy.
 */
function inProcessBake(bench, dir) {
  let loaded;
  let count = 0;
  const kilnVersion = JSON.parse(readFileSync(join(bench.root, "apps/cli/package.json"), "utf8")).version;
  return async (env) => {
    const engine = await import(pathToFileURL(join(bench.root, "packages/core/dist/engine.js")).href);
    const load = () =>
      engine.loadProject(join(dir, "kiln.yaml"), { runProjectCode: true, plugins: { from: [join(bench.root, "apps/cli/dist")] } });
    const savedHost = process.env.DOCKER_HOST;
    if (env.DOCKER_HOST) process.env.DOCKER_HOST = env.DOCKER_HOST;
    let result;
    let startedAt;
    let ms;
    try {
      if (!loaded) loaded = await load();
      const project = env.DOCKER_HOST ? await load() : loaded;
      count += 1;
      const runId = `${bench.runId}-inprocess-${count}`;
      bench.kilnRunIds.add(runId);
      startedAt = performance.now();
      result = await new engine.BuildRun({ project, force: true, kilnVersion, runId, signal: bench.signal }).run();
      ms = performance.now() - startedAt;
    } finally {
      // Restored before anything else runs: the docker CLI removing the image must not go through the proxy.
      if (savedHost === undefined) delete process.env.DOCKER_HOST;
      else process.env.DOCKER_HOST = savedHost;
    }
    await removeImages(
      bench,
      result.records.flatMap((record) => (record.artifact ? [record.artifact.id] : [])),
    );
    if (!result.ok)
      throw new Error(`in-process bake failed: ${JSON.stringify(result.records.map((record) => record.error ?? record.status))}`);
    return { ms, startedAt, steps: stepTotals(result.records[0]?.steps ?? []) };
  };
}

async function dockerBuild(bench, dir, tag, env) {
  const args = ["build", "--no-cache", "--force-rm", "-q", "--label", `${BUILD_LABEL}=${bench.runId}`, "-t", tag, dir];
  const { ms, startedAt } = await bench.exec("docker", args, { env, timeoutMs: BAKE_TIMEOUT_MS });
  await removeImages(bench, [tag]);
  return { ms, startedAt };
}

async function packerBuild(bench, dir, args, tags, env) {
  const packerEnv = { CHECKPOINT_DISABLE: "1", PACKER_LOG: "", PACKER_TMP_DIR: join(bench.work, "packer-tmp"), ...env };
  const { ms, startedAt } = await bench.exec(bench.packer.path, ["build", "-color=false", ...args, "packer.json"], {
    cwd: dir,
    env: packerEnv,
    timeoutMs: BAKE_TIMEOUT_MS,
  });
  await removeImages(bench, tags);
  return { ms, startedAt };
}

async function removeImages(bench, references) {
  if (references.length > 0) await bench.exec("docker", ["rmi", "-f", ...references], { timeoutMs: START_TIMEOUT_MS }).catch(() => {});
}

/** The kiln / docker / packer variants of a case with one image in `dir` (Dockerfile and packer.json written by the case). */
function threeWays(bench, dir, name) {
  const tag = `${tagPrefix(bench)}/${name}`;
  const variants = [
    { key: "kiln", label: "kiln build", traced: true, run: (env) => kilnBuild(bench, dir, ["--force"], env) },
    { key: "docker", label: "docker build --no-cache", traced: true, run: (env) => dockerBuild(bench, dir, `${tag}:docker`, env) },
  ];
  if (bench.packer) {
    const label = `packer build (docker builder, ${bench.packer.version})`;
    variants.push({ key: "packer", label, traced: true, run: (env) => packerBuild(bench, dir, [], [`${tag}:packer-${name}`], env) });
  }
  return variants;
}

function oneStep(bench) {
  const dir = join(bench.work, "one-step");
  const step = "echo hello > /hello.txt";
  const tag = `${tagPrefix(bench)}/one-step`;
  const bakeInProcess = inProcessBake(bench, dir);
  const [kiln, ...others] = threeWays(bench, dir, "one-step");
  return {
    name: "one-step",
    title: "the fixture image + one shell step",
    setup() {
      kilnProject(bench, dir, "one-step", {
        "one-step": [`source: ${bench.fixture}`, `provision: [{ shell: { inline: ["${step}"] } }]`, `tags: ["${tag}:kiln"]`],
      });
      writeFileSync(join(dir, "Dockerfile"), `FROM ${bench.fixture}\nRUN ${step}\n`);
      packerTemplate(bench, dir, tag, ["one-step"], [{ type: "shell", inline: [step] }]);
    },
    variants: [kiln, { key: "inprocess", label: "in-process bake (BuildRun)", traced: true, run: bakeInProcess }, ...others],
    ratios: [
      ratio("kiln build / docker build --no-cache", "kiln", "docker", 1.3),
      ratio("in-process bake / docker build --no-cache", "inprocess", "docker", 1.1),
      ratio("kiln build / packer build", "kiln", "packer", 0.5),
    ],
  };
}

function tenStep(bench) {
  const dir = join(bench.work, "ten-step");
  const steps = Array.from({ length: 10 }, (_, index) => `echo step ${index + 1} > /etc/kiln-bench-step-${index + 1}`);
  return {
    name: "ten-step",
    title: "10 shell steps / a Dockerfile with 10 RUNs / 10 Packer shell provisioners",
    setup() {
      kilnProject(bench, dir, "ten-step", {
        "ten-step": [
          `source: ${bench.fixture}`,
          "provision:",
          ...steps.map((step) => `  - shell: { inline: ["${step}"] }`),
          `tags: ["${tagPrefix(bench)}/ten-step:kiln"]`,
        ],
      });
      writeFileSync(join(dir, "Dockerfile"), `FROM ${bench.fixture}\n${steps.map((step) => `RUN ${step}\n`).join("")}`);
      const provisioners = steps.map((step) => ({ type: "shell", inline: [step] }));
      packerTemplate(bench, dir, `${tagPrefix(bench)}/ten-step`, ["ten-step"], provisioners);
    },
    variants: threeWays(bench, dir, "ten-step"),
    ratios: [
      ratio("kiln build / docker build --no-cache", "kiln", "docker", 0.4),
      ratio("kiln build / packer build", "kiln", "packer", 0.5),
    ],
  };
}

function fileHeavy(bench) {
  const dir = join(bench.work, "file-heavy");
  return {
    name: "file-heavy",
    title: "a 200 MiB tree of 5,000 files: file provisioner / Dockerfile COPY / Packer file provisioner",
    setup() {
      kilnProject(bench, dir, "file-heavy", {
        "file-heavy": [
          `source: ${bench.fixture}`,
          "provision: [{ file: { source: ./tree/, destination: /srv/tree/ } }]",
          `tags: ["${tagPrefix(bench)}/file-heavy:kiln"]`,
        ],
      });
      const { files, bytes } = writeFileTree(join(dir, "tree"));
      writeFileSync(join(dir, "Dockerfile"), `FROM ${bench.fixture}\nCOPY tree/ /srv/tree/\n`);
      writeFileSync(join(dir, ".dockerignore"), "kiln.yaml\npacker.json\nkiln-manifest.json\n");
      packerTemplate(
        bench,
        dir,
        `${tagPrefix(bench)}/file-heavy`,
        ["file-heavy"],
        [{ type: "file", source: "tree/", destination: "/srv/tree/" }],
      );
      return `tree: ${files} files, ${(bytes / 2 ** 20).toFixed(0)} MiB`;
    },
    variants: threeWays(bench, dir, "file-heavy"),
    ratios: [ratio("kiln build / docker build --no-cache", "kiln", "docker"), ratio("kiln build / packer build", "kiln", "packer", 0.5)],
  };
}

/**
 * 5,000 files, 200 MiB, the same bytes every time (AES-CTR keystream from a fixed key: incompressible, like binaries): 4,950
 * small files of 1–48 KiB in 500 directories and 50 large ones sharing the rest, the mix of a typical application tree.
 */
export function writeFileTree(dir, { files = 5000, bytes = 200 * 2 ** 20, large = 50 } = {}) {
  const key = createHash("sha256").update("kiln-bench file tree").digest();
  const stream = createCipheriv("aes-128-ctr", key.subarray(0, 16), key.subarray(16, 32));
  const smallSizes = [1024, 4096, 16384, 49152];
  const small = Array.from({ length: files - large }, (_, index) => smallSizes[index % smallSizes.length]);
  const smallTotal = small.reduce((sum, size) => sum + size, 0);
  const largeSize = Math.floor((bytes - smallTotal) / large);
  const sizes = [...small, ...Array.from({ length: large }, () => largeSize)];
  let written = 0;
  for (const [index, size] of sizes.entries()) {
    const leaf = join(dir, `d${String(Math.floor(index / 100) % 50).padStart(2, "0")}`, `s${Math.floor(index / 10) % 10}`);
    if (index % 10 === 0) mkdirSync(leaf, { recursive: true });
    writeFileSync(join(leaf, `f${String(index).padStart(4, "0")}.bin`), stream.update(Buffer.alloc(size)));
    written += size;
  }
  return { files: sizes.length, bytes: written };
}

function startup(bench) {
  const dir = join(bench.work, "startup");
  const node = (args) => bench.exec(process.execPath, args, { timeoutMs: START_TIMEOUT_MS });
  const variants = [
    { key: "node", label: "node -e 0 (Node start-up)", run: () => node(["-e", "0"]) },
    { key: "version", label: "kiln --version", run: () => node([bench.cli, "--version"]) },
    { key: "validate", label: "kiln validate (3 images)", run: () => node([bench.cli, "validate", "-C", dir]) },
    {
      key: "plan",
      label: "kiln plan (3 images, all cached)",
      traced: true,
      run: (env) => bench.exec(process.execPath, [bench.cli, "plan", "-C", dir], { env, timeoutMs: START_TIMEOUT_MS }),
    },
    {
      key: "noop",
      label: "no-op kiln build (3 unchanged images)",
      traced: true,
      run: (env) => kilnBuild(bench, dir, [], env, { expectBaked: false }),
    },
  ];
  if (bench.packer) {
    const packerVersion = () =>
      bench.exec(bench.packer.path, ["version"], { env: { CHECKPOINT_DISABLE: "1" }, timeoutMs: START_TIMEOUT_MS });
    variants.push({ key: "packer", label: "packer version (a Go binary)", run: packerVersion });
  }
  const image = (name, from) => [
    from ? `from: ${from}` : `source: ${bench.fixture}`,
    `provision: [{ shell: { inline: ["echo ${name} > /etc/${name}"] } }]`,
  ];
  return {
    name: "startup",
    title: "CLI start-up, and a no-op build of base, app (from base) and tool, all three cached",
    async setup() {
      kilnProject(bench, dir, "startup", { base: image("base"), app: image("app", "base"), tool: image("tool") });
      // Baked once, kept until the end: every timed build finds all three cached.
      const events = eventsOf(
        (await bench.exec(process.execPath, [bench.cli, "build", "-C", dir, "--json"], { timeoutMs: BAKE_TIMEOUT_MS })).stdout,
        bench,
      );
      return `baked once: ${events.filter((event) => event.type === "image.done").length} images`;
    },
    variants,
    ratios: [
      extra("kiln --version − node -e 0", "version", "node", 15),
      extra("kiln validate − node -e 0", "validate", "node", 60),
      extra("kiln plan − node -e 0", "plan", "node"),
      extra("no-op kiln build of 3 − kiln --version", "noop", "version", 150),
      ratio("kiln --version / packer version", "version", "packer", 1.1),
    ],
  };
}

function parallel(bench) {
  const dir = join(bench.work, "parallel");
  const names = ["a", "b", "c", "d"];
  const repository = `${tagPrefix(bench)}/parallel`;
  const dockerBuilds = async (some, env) => {
    const startedAt = performance.now();
    // Settled, not Promise.all: after a failure or Ctrl-C the other builds must have ended before anything is cleaned up.
    const builds = await Promise.allSettled(
      some.map((name) => bench.exec("docker", dockerArgs(name), { env, timeoutMs: BAKE_TIMEOUT_MS })),
    );
    const failed = builds.find((build) => build.status === "rejected");
    if (failed) throw failed.reason;
    const ms = performance.now() - startedAt;
    await removeImages(
      bench,
      some.map((name) => `${repository}:docker-${name}`),
    );
    return { ms, startedAt };
  };
  const dockerArgs = (name) => [
    ...["build", "--no-cache", "--force-rm", "-q", "--label", `${BUILD_LABEL}=${bench.runId}`],
    ...["-t", `${repository}:docker-${name}`, join(dir, name)],
  ];
  const variants = [
    { key: "kilnOne", label: "kiln build of 1 image", traced: true, run: (env) => kilnBuild(bench, dir, ["--force", "--only", "a"], env) },
    {
      key: "kilnFour",
      label: "kiln build of 4, --parallel 4",
      traced: true,
      run: (env) => kilnBuild(bench, dir, ["--force", "--parallel", "4"], env),
    },
    { key: "dockerOne", label: "docker build of 1", traced: true, run: (env) => dockerBuilds(["a"], env) },
    { key: "dockerFour", label: "4 docker builds at once", traced: true, run: (env) => dockerBuilds(names, env) },
  ];
  if (bench.packer) {
    const tags = (some) => some.map((name) => `${repository}:packer-${name}`);
    variants.push(
      { key: "packerOne", label: "packer build of 1", traced: true, run: (env) => packerBuild(bench, dir, ["-only=a"], tags(["a"]), env) },
      {
        key: "packerFour",
        label: "packer build of 4, -parallel-builds=4",
        traced: true,
        run: (env) => packerBuild(bench, dir, ["-parallel-builds=4"], tags(names), env),
      },
    );
  }
  return {
    name: "parallel",
    title: "4 independent one-step images at once, against one of them",
    setup() {
      const step = (name) => `echo ${name} > /etc/kiln-bench-${name}`;
      kilnProject(
        bench,
        dir,
        "parallel",
        Object.fromEntries(
          names.map((name) => [
            name,
            [`source: ${bench.fixture}`, `provision: [{ shell: { inline: ["${step(name)}"] } }]`, `tags: ["${repository}:kiln-${name}"]`],
          ]),
        ),
      );
      for (const name of names) {
        mkdirSync(join(dir, name));
        writeFileSync(join(dir, name, "Dockerfile"), `FROM ${bench.fixture}\nRUN ${step(name)}\n`);
      }
      packerTemplate(bench, dir, repository, names, [{ type: "shell", inline: ["echo {{build_name}} > /etc/kiln-bench-{{build_name}}"] }]);
    },
    variants,
    ratios: [
      ratio("kiln: 4 with --parallel 4 / 1 image", "kilnFour", "kilnOne", 1.6),
      ratio("docker build: 4 at once / 1 (the engine alone)", "dockerFour", "dockerOne"),
      ratio("kiln 4 / docker build 4", "kilnFour", "dockerFour"),
      ratio("kiln 4 / packer build 4", "kilnFour", "packerFour", 0.5),
    ],
  };
}

/**
 * Removes every container and image the bench made: by its run id (label, name, tag prefix), by Kiln's run ids and by the
 * cases' project names. Images go in passes, since a parent cannot go before its child. Returns what could not be removed.
 */
export async function removeBenchResources(bench) {
  const docker = async (args) => (await bench.exec("docker", args, { timeoutMs: START_TIMEOUT_MS, always: true })).stdout;
  const runIds = new Set([bench.runId, ...bench.kilnRunIds]);
  const containers = (
    await docker(["ps", "-a", "--filter", `label=${BUILD_LABEL}`, "--format", `{{.ID}} {{.Label "${BUILD_LABEL}"}} {{.Names}}`])
  )
    .split("\n")
    .map((line) => line.split(" "))
    .filter(([id, runId, name]) => id && (runIds.has(runId) || name?.includes(bench.runId)))
    .map(([id]) => id);
  const named = (await docker(["ps", "-aq", "--filter", `name=${bench.runId}`])).split("\n").filter(Boolean);
  const allContainers = [...new Set([...containers, ...named])];
  if (allContainers.length > 0) await docker(["rm", "-f", "-v", ...allContainers]).catch(() => {});
  let left = [];
  for (let pass = 0; ; pass++) {
    const lists = await Promise.all([
      docker(["images", "-aq", "--filter", `label=${BUILD_LABEL}=${bench.runId}`]),
      ...[...bench.projects].map((project) => docker(["images", "-aq", "--filter", `label=${PROJECT_LABEL}=${project}`])),
      docker(["images", "--format", "{{.Repository}}:{{.Tag}}"]).then((out) =>
        out
          .split("\n")
          .filter((tag) => tag.startsWith(`${tagPrefix(bench)}/`))
          .join("\n"),
      ),
    ]);
    left = [...new Set(lists.join("\n").split("\n").filter(Boolean))];
    if (left.length === 0 || pass === 5) break;
    for (const image of left) await docker(["rmi", "-f", image]).catch(() => {});
  }
  return { containers: allContainers.length, left };
}

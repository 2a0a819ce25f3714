import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  FIXTURE_IMAGE,
  followStream,
  type SecondEngine,
  startRegistry,
  startSecondEngine,
  type TestRegistry,
} from "@kiln/driver-docker/testing";
import { buildOk, dockerRuns, kiln, marker, project, runIdOf } from "./helpers.js";

const local = new Docker();
const runs = dockerRuns();
const baked = (output: string) => [...output.matchAll(/==> (\w+): baked /g)].map((match) => match[1]).sort();
const cached = (output: string) => [...output.matchAll(/==> (\w+): cached /g)].map((match) => match[1]).sort();

/** Pushes the fixture to the registry as a source image every engine can pull, as `debian:bookworm` would be on Docker Hub. */
async function pushFixture(registry: TestRegistry, auth?: { username: string; password: string }): Promise<string> {
  const repo = `${registry.address}/fixture`;
  await local.getImage(FIXTURE_IMAGE).tag({ repo, tag: "1" });
  const authconfig = auth ? { authconfig: { ...auth, serveraddress: registry.address } } : {};
  await followStream(local, await local.getImage(`${repo}:1`).push({ tag: "1", ...authconfig }));
  return `${repo}:1`;
}

/** The repository's tags, straight from the registry's API. */
async function registryTags(registry: TestRegistry, repository: string): Promise<string[]> {
  const response = await fetch(`http://${registry.address}/v2/${repository}/tags/list`);
  return response.status === 404 ? [] : (((await response.json()) as { tags?: string[] }).tags ?? []);
}

/** The image id (config digest) a registry tag names, straight from the registry's API. */
async function registryImageId(registry: TestRegistry, repository: string, tag: string): Promise<string | undefined> {
  const accept = "application/vnd.docker.distribution.manifest.v2+json";
  const response = await fetch(`http://${registry.address}/v2/${repository}/manifests/${tag}`, { headers: { accept } });
  return response.ok ? ((await response.json()) as { config: { digest: string } }).config.digest : undefined;
}

/** base, and app and api built on it: every image verified, so each can be promoted. */
function threeImages(name: string, registry: string, source: string, appStep = "app"): string {
  const image = (image: string, from: string, step: string) =>
    `  ${image}:\n    driver: docker\n    ${from}\n    provision: [{ shell: { inline: ["echo ${step} > /etc/${image}"] } }]\n` +
    `    verify: { checks: [{ file: /etc/${image} }] }\n`;
  return [
    `project: ${name}`,
    `defaults:\n  docker: { registry: "${registry}" }`,
    "images:",
    image("base", `source: ${source}`, "base") + image("app", "from: base", appStep) + image("api", "from: base", "api"),
  ].join("\n");
}

describe("artefacts in a registry, shared by every machine", { timeout: 600_000 }, () => {
  let registry: TestRegistry;
  let fresh: SecondEngine;
  let source: string;

  beforeAll(async () => {
    [registry, fresh] = await Promise.all([startRegistry(), startSecondEngine()]);
    source = await pushFixture(registry);
  }, 600_000);
  afterAll(async () => {
    await Promise.all([registry?.stop(), fresh?.stop()]);
    await local
      .getImage(source)
      .remove()
      .catch(() => {});
  });

  it("a fresh engine bakes nothing, a child bakes on its parent from the registry, channels and prune reach every engine", async () => {
    const name = `reg-${marker()}`;
    const namespace = `${registry.address}/team`;
    await using dir = await project({ "kiln.yaml": threeImages(name, namespace, source) });
    const onFresh = { env: { DOCKER_HOST: fresh.host } };

    // This machine bakes and publishes: each verified artefact goes to <namespace>/<project>/<image>:key-<bake key>.
    expect(baked(await buildOk(runs, dir.dir))).toEqual(["api", "app", "base"]);
    const manifest = JSON.parse(await readFile(join(dir.dir, "kiln-manifest.json"), "utf8")) as {
      builds: { image: string; artifact_id: string; bake_key: string; digests: string[] }[];
    };
    const base = manifest.builds.find((build) => build.image === "base");
    expect(base?.digests).toEqual([expect.stringMatching(new RegExp(`^${namespace}/${name}/base@sha256:[0-9a-f]{64}$`))]);
    expect(await registryTags(registry, `team/${name}/base`)).toEqual([`key-${base?.bake_key}`]);

    // Another machine with an empty image store: the plan reads the registry, and the build bakes nothing and pulls nothing.
    const plan = await kiln(["plan", "-C", dir.dir], onFresh);
    expect(plan.stdout, plan.stderr).toMatch(/0 to bake, 3 cached/);
    const again = await kiln(["build", "-C", dir.dir], onFresh);
    runs.push(runIdOf(again.stdout, again.stderr));
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(cached(again.stdout)).toEqual(["api", "app", "base"]);
    expect(baked(again.stdout)).toEqual([]);
    expect((await fresh.api.listImages({ filters: { label: [`dev.kiln.project=${name}`] } })).length).toBe(0);

    // A changed child bakes there on its parent's artefact, pulled from the registry by digest, not on a rebaked parent.
    await writeFile(join(dir.dir, "kiln.yaml"), threeImages(name, namespace, source, "app-2"));
    const child = await kiln(["build", "-C", dir.dir], onFresh);
    runs.push(runIdOf(child.stdout, child.stderr));
    expect(child.code, child.stdout + child.stderr).toBe(0);
    expect(baked(child.stdout)).toEqual(["app"]);
    expect(child.stdout).toContain(`pulling ${base?.digests[0]}`);
    const newApp = /app: sha256:([0-9a-f]{64})/.exec(child.stdout)?.[1];
    const inspected = await fresh.api.getImage(`sha256:${newApp}`).inspect();
    expect(inspected.Config.Labels["dev.kiln.parent"]).toBe(base?.artifact_id);

    // A promotion made on this machine is what `kiln images` shows on the other one.
    const promoted = await kiln(["promote", "-C", dir.dir, "api", "prod"]);
    expect(promoted.code, promoted.stderr).toBe(0);
    const images = await kiln(["images", "-C", dir.dir], onFresh);
    expect(images.stdout).toMatch(/api\s+[0-9a-f]{12}\s.*channels: prod/);
    expect(await registryTags(registry, `team/${name}/api`)).toEqual(expect.arrayContaining(["prod", "prod-1"]));
    // Provenance on the other machine says where the artefact is stored, by digest.
    const api = manifest.builds.find((build) => build.image === "api");
    const provenance = await kiln(["provenance", "-C", dir.dir, api?.artifact_id ?? ""]);
    expect(provenance.stdout, provenance.stderr).toContain(`stored at ${api?.digests[0]}`);

    // Prune on the other machine deletes the old app artefact from the registry, by digest; the new one stays.
    const oldApp = manifest.builds.find((build) => build.image === "app");
    const pruned = await kiln(["prune", "-C", dir.dir, "--keep", "1"], onFresh);
    expect(pruned.stdout, pruned.stderr).toContain(`removed app ${oldApp?.artifact_id.slice(7, 19)}`);
    const appTags = await registryTags(registry, `team/${name}/app`);
    expect(appTags).not.toContain(`key-${oldApp?.bake_key}`);
    expect(appTags).toHaveLength(1);
  });

  it("a debootstrap base is shared too: a fresh engine neither builds it nor rebakes what stands on it", async () => {
    const name = `reg-${marker()}`;
    // The fixture's own recipe: this engine has its base already, so nothing is built by debootstrap here either.
    const recipe = `{ debootstrap: { suite: bookworm, variant: minbase, include: [python3] } }`;
    const body =
      `project: ${name}\ndefaults:\n  docker: { registry: "${registry.address}/team" }\nimages:\n` +
      `  base:\n    driver: docker\n    source: ${recipe}\n    provision: [{ shell: { inline: ["echo ${name} > /etc/base"] } }]\n` +
      `  app:\n    driver: docker\n    from: base\n    provision: [{ shell: { inline: ["echo app > /etc/app"] } }]\n`;
    await using dir = await project({ "kiln.yaml": body });
    expect(baked(await buildOk(runs, dir.dir))).toEqual(["app", "base"]);
    expect((await registryTags(registry, "team/kiln-debootstrap/bookworm")).length).toBe(1);

    const again = await kiln(["build", "-C", dir.dir], { env: { DOCKER_HOST: fresh.host } });
    runs.push(runIdOf(again.stdout, again.stderr));
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(cached(again.stdout)).toEqual(["app", "base"]);
    expect(again.stdout).not.toMatch(/debootstrap|importing|pulling/i);
    expect(await fresh.api.listImages({ filters: { label: [`dev.kiln.project=${name}`] } })).toEqual([]);
  });

  it("engines: a 4-image project is dealt out over two engines, and a child bakes on a parent from the other engine", async () => {
    const name = `reg-${marker()}`;
    const image = (image: string, from: string) =>
      `  ${image}:\n    driver: docker\n    ${from}\n    provision: [{ shell: { inline: ["echo ${name} > /etc/${image}"] } }]\n`;
    const engines = `["unix:///var/run/docker.sock", "${fresh.host}"]`;
    const file = (registryLine: string) =>
      `project: ${name}\ndefaults:\n  docker: { engines: ${engines}${registryLine} }\nimages:\n` +
      ["one", "two", "three", "four"].map((each) => image(each, `source: ${source}`)).join("") +
      image("child", "from: two");

    // Without a registry a child could not follow its parent to another engine: refused before anything runs.
    await using unshared = await project({ "kiln.yaml": file("") });
    const refused = await kiln(["validate", "-C", unshared.dir]);
    expect(refused.code).toBe(2);
    expect(refused.stdout + refused.stderr).toMatch(/kiln\.yaml:3:\d+.*several engines need `registry`/);

    await using dir = await project({ "kiln.yaml": file(`, registry: "${registry.address}/team"`) });
    const output = await buildOk(runs, dir.dir, "--parallel", "4");
    expect(baked(output)).toEqual(["child", "four", "one", "three", "two"]);
    const on = async (api: Docker) =>
      (await api.listImages({ filters: { label: [`dev.kiln.project=${name}`] } })).map((each) => each.Labels["dev.kiln.image"]);
    const [first, second] = [await on(local), await on(fresh.api)];
    // Dealt in turn, in the file's order: one and three here, two and four on the other engine; then the child to the engine
    // dealt the fewest so far (a tie: the first listed), where its parent is pulled from the registry.
    expect(first.sort()).toEqual(["child", "one", "three", "two"]);
    expect(second.sort()).toEqual(["four", "two"]);
    expect(output).toMatch(new RegExp(`child: pulling ${registry.address}/team/${name}/two@sha256:`));
    // Every artefact is in the registry, whichever engine baked it.
    const manifest = JSON.parse(await readFile(join(dir.dir, "kiln-manifest.json"), "utf8")) as { builds: { digests: string[] }[] };
    expect(manifest.builds.map((build) => build.digests.length)).toEqual([1, 1, 1, 1, 1]);
  });

  it("two runs of one project at once, on two engines: each key's entry is one run's artefact; a run finding it taken says so", async () => {
    const name = `reg-${marker()}`;
    await using dir = await project({ "kiln.yaml": threeImages(name, `${registry.address}/team`, source) });
    const both = await Promise.all([
      kiln(["build", "-C", dir.dir, "--json"]),
      kiln(["build", "-C", dir.dir, "--json"], { env: { DOCKER_HOST: fresh.host } }),
    ]);
    for (const run of both) {
      runs.push(runIdOf(run.stdout, run.stderr));
      expect(run.code, run.stdout + run.stderr).toBe(0);
    }
    const events = both.map((run) =>
      run.stdout
        .split("\n")
        .filter(Boolean)
        .map((line) => JSON.parse(line)),
    );
    const done = events.map((run) => run.filter((event) => /^image\.(done|cached)$/.test(event.type)));
    for (const event of done.flat()) {
      // The entry under this bake key is one of the two runs' artefacts of that key, never a mix or an image of another key.
      const published = await registryImageId(registry, `team/${name}/${event.image}`, `key-${event.bakeKey}`);
      const candidates = done
        .flat()
        .filter((other) => other.bakeKey === event.bakeKey)
        .map((other) => other.artifact.id);
      expect(candidates).toContain(published);
    }
    // A run whose artefact did not become the entry says so, and keeps it on its own engine (no digest in its manifest).
    for (const [index, run] of events.entries()) {
      for (const event of done[index] ?? []) {
        const kept = run.some((line) => line.type === "log" && line.message.includes(`of "${event.image}" is already in`));
        expect(event.artifact.digests?.length ?? 0, JSON.stringify(run)).toBe(kept ? 0 : 1);
      }
    }
  });

  it("a registry with TLS and a login: Docker's own login or a sensitive variable; without one, exit 1 says to log in", async () => {
    const password = `pw-${marker()}`;
    const secure = await startRegistry({ tls: true, htpasswd: { user: "kiln", password } });
    const config = await mkdtemp(join(tmpdir(), "kiln-docker-config-"));
    try {
      const name = `reg-${marker()}`;
      const file = (auth: string) =>
        `project: ${name}\n${auth ? "variables:\n  registry_password: { sensitive: true }\n" : ""}` +
        `images:\n  base:\n    driver: docker\n    source: ${FIXTURE_IMAGE}\n    registry: "${secure.address}/team"\n${auth}` +
        `    provision: [{ shell: { inline: ["echo ${name} > /etc/base"] } }]\n`;

      // No login at all: the registry answers 401 and the build stops before baking, saying how to log in.
      await using anonymous = await project({ "kiln.yaml": file("") });
      const refused = await kiln(["build", "-C", anonymous.dir], { env: { DOCKER_CONFIG: config } });
      expect(refused.code).toBe(1);
      expect(refused.stdout + refused.stderr).toMatch(/HTTP 401[\s\S]*docker login/);

      // Docker's own login (what `docker login` writes to config.json) is used for the lookups and the push.
      const auth = Buffer.from(`kiln:${password}`).toString("base64");
      await writeFile(join(config, "config.json"), JSON.stringify({ auths: { [secure.address]: { auth } } }));
      const viaLogin = await kiln(["build", "-C", anonymous.dir], { env: { DOCKER_CONFIG: config } });
      runs.push(runIdOf(viaLogin.stdout, viaLogin.stderr));
      expect(viaLogin.code, viaLogin.stdout + viaLogin.stderr).toBe(0);
      expect(viaLogin.stdout).toMatch(/base: publish/);

      // A credential helper named by config.json (docker-credential-<name> get: the host on stdin, JSON out) is asked too.
      const helpers = join(config, "bin");
      await mkdir(helpers);
      const reply = JSON.stringify({ ServerURL: secure.address, Username: "kiln", Secret: password });
      await writeFile(join(helpers, "docker-credential-kilntest"), `#!/bin/sh\nread host\necho '${reply}'\n`, { mode: 0o755 });
      await writeFile(join(config, "config.json"), JSON.stringify({ credHelpers: { [secure.address]: "kilntest" } }));
      const viaHelper = await kiln(["plan", "-C", anonymous.dir], {
        env: { DOCKER_CONFIG: config, PATH: `${helpers}:${process.env.PATH}` },
      });
      expect(viaHelper.stdout, viaHelper.stderr).toMatch(/base\s+cached/);

      // A sensitive variable instead: the same key is found in the registry, and the password shows nowhere.
      const withVariable = `    registry_auth: { username: kiln, password: "{{ registry_password }}" }\n`;
      await using byVariable = await project({ "kiln.yaml": file(withVariable) });
      const run = await kiln(["build", "-C", byVariable.dir, "--var", `registry_password=${password}`, "--json"]);
      expect(run.code, run.stdout + run.stderr).toBe(0);
      expect(run.stdout).toMatch(/"type":"image.cached"/);
      const written = await readFile(join(byVariable.dir, "kiln-manifest.json"), "utf8");
      for (const text of [run.stdout, run.stderr, written]) expect(text).not.toContain(password);
    } finally {
      await secure.stop();
      await rm(config, { recursive: true, force: true });
    }
  });
});

import { randomBytes } from "node:crypto";
import type Docker from "dockerode";
import tarStream from "tar-stream";
import { defineDriver, KilnError, LABELS, type Artifact, type BakeContext, type SourceRef } from "@kiln/core";
import { describeRecipe } from "@kiln/debootstrap";
import { debootstrapImage, findDebootstrapImage } from "./debootstrap.js";
import { connect, engineUnreachable, isNotFound, splitTag } from "./engine.js";
import { DockerMachine, removeContainer } from "./machine.js";
import { referenceProblem } from "./reference.js";
import { dockerOptionsSchema, type DockerChanges, type DockerOptions } from "./options.js";

/** Where a verify container's boot script is written (in that container only, never in the image). */
const BOOT_SCRIPT = "/.kiln-boot.sh";

/** Keeps a build container alive without a TTY, and exits promptly on `docker stop`. */
const KEEP_ALIVE = ["/bin/sh", "-c", 'trap "exit 0" TERM INT; while :; do sleep 3600 & wait $!; done'];

export const docker = defineDriver<DockerOptions>(() => {
  let client: Promise<Docker> | undefined;
  const engine = () => (client ??= connect());

  return {
    name: "docker",
    schema: dockerOptionsSchema,
    runtimeSupport: { bootScript: true, hostPorts: true },
    connectionKinds: ["docker"],
    checkTag: (tag) => referenceProblem(tag),
    hostAccess: (opts) => [
      ...Object.entries(opts.volumes ?? {}).map(([host, inside]) => ({
        path: ["volumes", host],
        what: `mounts ${host} ${inside.endsWith(":ro") ? "read-only" : "read-write"}${/(^|\/)docker\.sock$/.test(host) ? " (control of the Docker engine: root on this host)" : ""}`,
      })),
      ...(opts.privileged ? [{ path: ["privileged"], what: "runs the build container privileged (root on this host)" }] : []),
    ],
    exposedOptions: [
      { path: ["changes"], where: "the image's config (docker image inspect shows it to anyone who pulls it)" },
      { path: ["run_command"], where: "the build container's command line (ps and docker inspect show it)" },
    ],

    async resolveSource(ctx, opts) {
      try {
        return await resolve(await engine(), ctx, opts);
      } catch (error) {
        throw engineUnreachable(error) ?? error;
      }
    },

    async launch(ctx, source, opts) {
      const api = await engine();
      const name = containerName(ctx, "build");
      const adopt = deferRemoval(ctx, api, name);
      const container = await api.createContainer({
        _query: { name, ...(opts.platform ? { platform: opts.platform } : {}) },
        _body: {
          Image: source.id,
          Entrypoint: opts.run_command ?? KEEP_ALIVE,
          Labels: { ...ctx.resourceLabels },
          HostConfig: {
            Privileged: opts.privileged ?? false,
            Binds: Object.entries(opts.volumes ?? {}).map(([host, inside]) => `${host}:${inside}`),
            Init: false,
          },
        },
      } as Docker.ContainerCreateOptions);
      await startContainer(container, "build");
      return adopt(await DockerMachine.of(api, container.id, opts.exec_user, source.id));
    },

    async capture(ctx, machine, target, opts) {
      const api = await engine();
      const sourceImage =
        machine instanceof DockerMachine && machine.sourceImage
          ? machine.sourceImage
          : (await api.getContainer(machine.id).inspect()).Image;
      const base = (await api.getImage(sourceImage).inspect()).Config;
      // Start from the source image's config, not the container's: the keep-alive entrypoint must not end up in the image.
      const config = {
        Entrypoint: toArgv(base?.Entrypoint),
        Cmd: base?.Cmd ?? [],
        Env: base?.Env ?? [],
        WorkingDir: base?.WorkingDir ?? "",
        User: base?.User ?? "",
        ExposedPorts: base?.ExposedPorts ?? {},
        Volumes: base?.Volumes ?? {},
        StopSignal: (base as { StopSignal?: string } | undefined)?.StopSignal,
        Labels: { ...(base?.Labels ?? {}) },
      };
      const dockerfileChanges = Array.isArray(opts.changes) ? opts.changes : [];
      if (opts.changes && !Array.isArray(opts.changes)) applyChanges(config, opts.changes);
      config.Labels = { ...config.Labels, ...target.labels };
      // Committed paused, not stopped first: stopping costs the engine the same network and cgroup teardown as removing the running
      // container later (measured: stop ≈ 140 ms, commit without pause saves ≈ 30 ms), and that removal overlaps verify and tagging.
      const result = (await api.getContainer(machine.id).commit({
        _query: {
          container: machine.id,
          pause: true,
          comment: `kiln bake of ${ctx.image}`,
          ...(dockerfileChanges.length ? { changes: dockerfileChanges } : {}),
        },
        _body: config,
      })) as { Id: string };
      ctx.defer(() => removeImage(api, result.Id), {
        when: "failure",
        resource: `image ${shortId(result.Id)}`,
        manualCommand: `docker rmi -f ${result.Id}`,
      });
      return { id: result.Id, driver: "docker", image: ctx.image, tags: [], labels: config.Labels, created: new Date().toISOString() };
    },

    async launchArtifact(ctx, artifact, runtime, opts) {
      const api = await engine();
      const name = containerName(ctx, "verify");
      const image = (await api.getImage(artifact.id).inspect()).Config;
      const own = [...toArgv(image?.Entrypoint), ...toArgv(image?.Cmd)];
      // An image without a command (a base image) is kept running like a build container so it can be inspected.
      const command = own.length > 0 ? own : KEEP_ALIVE;
      const start = runtime.bootScript ? ["/bin/sh", "-c", 'sh "$0" && exec "$@"', BOOT_SCRIPT, ...command] : command;
      const ports = Object.fromEntries((runtime.ports ?? []).map((port) => [`${port}/tcp`, [{ HostIp: "127.0.0.1", HostPort: "" }]]));
      const adopt = deferRemoval(ctx, api, name);
      const container = await api.createContainer({
        _query: { name, ...(opts.platform ? { platform: opts.platform } : {}) },
        _body: {
          Image: artifact.id,
          Env: Object.entries(runtime.env ?? {}).map(([key, value]) => `${key}=${value}`),
          Labels: { ...ctx.resourceLabels },
          // Started as `docker run` would, through our own entrypoint only when a boot script must run first.
          ...(start === own ? {} : { Entrypoint: start, Cmd: [] }),
          ExposedPorts: Object.fromEntries(Object.keys(ports).map((key) => [key, {}])),
          HostConfig: { PortBindings: ports },
        },
      } as Docker.ContainerCreateOptions);
      const files = { ...runtime.files, ...(runtime.bootScript ? { [BOOT_SCRIPT]: { content: runtime.bootScript, mode: 0o700 } } : {}) };
      if (Object.keys(files).length > 0) await container.putArchive(filesArchive(files) as unknown as NodeJS.ReadableStream, { path: "/" });
      await startContainer(container, "verify");
      return adopt(await DockerMachine.of(api, container.id, opts.exec_user));
    },

    async findArtifacts(query) {
      const api = await engine();
      const wanted = Object.entries(query.labels ?? {});
      if (query.ref !== undefined) {
        const info = await api
          .getImage(query.ref)
          .inspect()
          .catch((error) => (isNotFound(error) ? undefined : Promise.reject(error)));
        if (!info) return [];
        const labels = info.Config?.Labels ?? {};
        const matches = wanted.every(([key, value]) => (value === undefined ? key in labels : labels[key] === value));
        return matches ? [toArtifact(info.Id, info.RepoTags, labels, info.Created)] : [];
      }
      const filters = wanted.map(([key, value]) => (value === undefined ? key : `${key}=${value}`));
      const images = await api.listImages({ all: true, filters: { label: filters } });
      return images.map((image) => toArtifact(image.Id, image.RepoTags, image.Labels ?? {}, new Date(image.Created * 1000).toISOString()));
    },

    async tag(artifact, reference) {
      await (await engine()).getImage(artifact.id).tag(splitTag(reference));
    },

    async remove(artifact) {
      await removeImage(await engine(), artifact.id);
    },
  };
});

async function resolve(api: Docker, ctx: BakeContext, opts: DockerOptions): Promise<SourceRef> {
  if (ctx.parent) return { id: ctx.parent.id, digest: ctx.parent.id, description: `${ctx.parent.image} (${shortId(ctx.parent.id)})` };
  const source = opts.source;
  if (source === undefined) throw new KilnError("E_CONFIG", `image "${ctx.image}" has no source`, { hint: "set source: or from:" });
  if (typeof source !== "string") {
    const recipe = source.debootstrap;
    if (ctx.planning && !(await findDebootstrapImage(api, recipe))) {
      throw new KilnError("E_SOURCE", `debootstrap ${recipe.suite} base is not built yet`);
    }
    const built = await debootstrapImage(api, recipe, { signal: ctx.signal, onOutput: (line) => ctx.output("stdout", `${line}\n`) });
    return {
      id: built.id,
      digest: built.id,
      description: describeRecipe(recipe),
      details: { mirror: built.mirror, built: built.created, tag: built.tag },
    };
  }
  return resolveImageRef(api, ctx, source, opts.pull ?? "missing");
}

async function resolveImageRef(api: Docker, ctx: BakeContext, reference: string, pull: "missing" | "always" | "never"): Promise<SourceRef> {
  const inspect = () => api.getImage(reference).inspect();
  let info = pull === "always" ? undefined : await inspect().catch((error) => (isNotFound(error) ? undefined : Promise.reject(error)));
  if (!info) {
    if (ctx.planning) throw new KilnError("E_SOURCE", `image "${reference}" would have to be pulled`);
    if (pull === "never") {
      throw new KilnError("E_SOURCE", `image "${reference}" is not present and pull is "never"`, {
        hint: `docker load or build it first, or set pull: missing`,
      });
    }
    await pullImage(api, ctx, reference);
    info = await inspect();
  }
  return { id: info.Id, digest: info.RepoDigests?.[0] ?? info.Id, description: reference };
}

async function pullImage(api: Docker, ctx: BakeContext, reference: string): Promise<void> {
  ctx.log.info(`pulling ${reference}`);
  try {
    const stream = await api.pull(reference);
    await new Promise<void>((resolve, reject) =>
      api.modem.followProgress(stream, (error: Error | null, output: { error?: string }[]) => {
        const failed = output?.find((item) => item.error)?.error;
        if (error || failed) reject(new Error(error?.message ?? failed));
        else resolve();
      }),
    );
  } catch (error) {
    throw new KilnError("E_SOURCE", `cannot pull image "${reference}": ${(error as Error).message}`, {
      hint: "no registry reachable? use source: { debootstrap: { suite: bookworm } } to build a Debian base locally, or docker load the image",
      cause: error,
    });
  }
}

type ImageConfig = {
  Entrypoint: string[];
  Cmd: string[];
  Env: string[];
  WorkingDir: string;
  User: string;
  ExposedPorts: Record<string, object>;
  Labels: Record<string, string>;
  StopSignal: string | undefined;
};

function applyChanges(config: ImageConfig, changes: DockerChanges): void {
  const argv = (value: string | string[]) => (typeof value === "string" ? ["/bin/sh", "-c", value] : value);
  if (changes.entrypoint !== undefined) config.Entrypoint = argv(changes.entrypoint);
  if (changes.cmd !== undefined) config.Cmd = argv(changes.cmd);
  if (changes.workdir !== undefined) config.WorkingDir = changes.workdir;
  if (changes.user !== undefined) config.User = changes.user;
  if (changes.stop_signal !== undefined) config.StopSignal = changes.stop_signal;
  if (changes.env) {
    const env = new Map(config.Env.map((entry) => [entry.split("=")[0], entry]));
    for (const [key, value] of Object.entries(changes.env)) env.set(key, `${key}=${value}`);
    config.Env = [...env.values()] as string[];
  }
  for (const port of changes.expose ?? []) {
    const spec = String(port);
    config.ExposedPorts[spec.includes("/") ? spec : `${spec}/tcp`] = {};
  }
  config.Labels = { ...config.Labels, ...changes.labels };
}

function toArtifact(id: string, repoTags: string[] | undefined, labels: Record<string, string>, created: string): Artifact {
  const tags = (repoTags ?? []).filter((tag) => tag !== "<none>:<none>");
  return { id, driver: "docker", image: labels[LABELS.image] ?? "", tags, labels, created };
}

/**
 * Registers a container's removal before the create call, by its unique name: a Ctrl-C while the engine creates it must not leave
 * it behind. The machine, once adopted, is removed through its own idempotent removal, so the container is not deleted twice.
 */
function deferRemoval(ctx: BakeContext, api: Docker, name: string): (machine: DockerMachine) => DockerMachine {
  let machine: DockerMachine | undefined;
  ctx.defer(() => (machine ? machine[Symbol.asyncDispose]() : removeContainer(api, name)), {
    resource: `container ${name}`,
    manualCommand: `docker rm -f ${name}`,
  });
  return (created) => (machine = created);
}

async function startContainer(container: Docker.Container, role: "build" | "verify"): Promise<void> {
  try {
    await container.start();
  } catch (error) {
    throw new KilnError("E_LAUNCH", `driver "docker": cannot start the ${role} container: ${(error as Error).message}`, {
      hint: "check the options the engine rejected (privileged, volumes, platform, run_command)",
      cause: error,
    });
  }
}

async function removeImage(api: Docker, id: string): Promise<void> {
  try {
    await api.getImage(id).remove({ force: true });
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
}

function filesArchive(files: Record<string, { content: string; mode?: number | undefined }>): tarStream.Pack {
  const pack = tarStream.pack();
  for (const [path, file] of Object.entries(files)) pack.entry({ name: path.replace(/^\/+/, ""), mode: file.mode ?? 0o644 }, file.content);
  pack.finalize();
  return pack;
}

/** `kiln-<run>-<image>-build-3f2a` — findable by run id, unique within a run. */
function containerName(ctx: BakeContext, role: "build" | "verify"): string {
  const safeImage = ctx.image.replace(/[^A-Za-z0-9_.-]/g, "-");
  return `kiln-${ctx.runId}-${safeImage}-${role}-${randomBytes(2).toString("hex")}`;
}

function toArgv(value: string | string[] | undefined | null): string[] {
  if (value === undefined || value === null) return [];
  return typeof value === "string" ? ["/bin/sh", "-c", value] : value;
}

function shortId(id: string): string {
  return id.replace(/^sha256:/, "").slice(0, 12);
}

export default docker;

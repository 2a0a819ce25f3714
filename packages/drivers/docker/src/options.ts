import { z } from "@kiln/core";
import { debootstrapRecipeSchema } from "@kiln/debootstrap";
import { changeProblem, portProblem, referenceProblem, registryProblem } from "./reference.js";

/** A string checked with `problem` (undefined: fine), so kiln validate refuses what the engine would. */
const checked = (problem: (value: string) => string | undefined) =>
  z.string().superRefine((value, context) => {
    const found = problem(value);
    if (found) context.addIssue({ code: "custom", message: found });
  });

const stringOrList = z.union([z.string(), z.array(z.string())]);

/** Image config changes applied when the container is committed (Dockerfile instructions, structured). */
const changesSchema = z.strictObject({
  cmd: stringOrList.optional().describe("CMD of the image. A string runs through /bin/sh -c."),
  entrypoint: stringOrList.optional().describe("ENTRYPOINT of the image."),
  env: z.record(z.string(), z.string()).optional().describe("ENV entries added to the image."),
  workdir: z.string().optional().describe("WORKDIR of the image."),
  expose: z
    .array(
      z.union([z.string(), z.number().int()]).superRefine((value, context) => {
        const found = portProblem(value);
        if (found) context.addIssue({ code: "custom", message: found });
      }),
    )
    .optional()
    .describe('EXPOSE entries, e.g. [8080, "53/udp"].'),
  user: z.string().optional().describe("USER the image runs as."),
  labels: z.record(z.string(), z.string()).optional().describe("LABELs added to the image."),
  stop_signal: z.string().optional().describe('STOPSIGNAL, e.g. "SIGTERM".'),
});

export const dockerOptionsSchema = z
  .strictObject({
    source: z
      .union([
        checked((value) => referenceProblem(value, { digest: true, id: true })),
        z.strictObject({
          debootstrap: debootstrapRecipeSchema.describe(
            "A Debian base built on this host by debootstrap and imported as an image, once per recipe: { suite, include, mirror, … }.",
          ),
        }),
      ])
      .optional()
      .describe('Image to start from ("debian:bookworm", an image id), or { debootstrap: { suite } } to build a Debian base on the host.'),
    pull: z
      .enum(["missing", "always", "never"])
      .optional()
      .describe('When to pull an image source: "missing" (default: only if not present), "always", "never".'),
    privileged: z.boolean().optional().describe("Run the build container privileged. Default false."),
    volumes: z
      .record(z.string(), z.string())
      .optional()
      .describe('Host paths mounted into the build container: { "/host/path": "/container/path[:ro]" }.'),
    platform: z.string().optional().describe('Platform of the build container, e.g. "linux/amd64" (engine support needed).'),
    run_command: z
      .array(z.string())
      .min(1)
      .optional()
      .describe("Entrypoint that keeps the build container alive. Default: a /bin/sh sleep loop. Not saved in the image."),
    exec_user: z.string().optional().describe("User that provisioners run as by default. Default: the image's user."),
    registry: checked(registryProblem)
      .optional()
      .describe(
        "Registry namespace (host[:port]/path) where verified artefacts are pushed and the bake cache, lineage and channels are shared " +
          "by every machine: <namespace>/<project>/<image>:key-<bake key>. Often set once in defaults: { docker: { registry } }.",
      ),
    engines: z
      .array(z.string().min(1))
      .min(1)
      .optional()
      .describe(
        "Engines to deal this run's bakes out over, in turn: DOCKER_HOST values (tcp://host:2376, unix:///…, ssh://…) or docker " +
          "context names. Needs `registry`, through which a child bakes on a parent baked on another engine.",
      ),
    registry_auth: z
      .strictObject({
        username: z.string().min(1).describe("User name at the registry."),
        password: z.string().min(1).describe("Password or token: use a variable marked sensitive, never the text itself."),
      })
      .optional()
      .describe("Login to the registry, from variables marked sensitive. Default: Docker's own login (docker login, credential helpers)."),
    changes: z
      .union([changesSchema, z.array(checked(changeProblem))])
      .optional()
      .describe(
        'Image config set at commit: { cmd, entrypoint, env, workdir, expose, user, labels } or Dockerfile lines like Packer ("EXPOSE 80").',
      ),
  })
  .superRefine((options, context) => {
    // A child may be dealt another engine than its parent: only a registry carries the parent there.
    if ((options.engines?.length ?? 0) > 1 && !options.registry)
      context.addIssue({
        code: "custom",
        path: ["engines"],
        message: "several engines need `registry`, which carries a parent's artefact to the engine its child bakes on",
      });
  });

export type DockerOptions = z.infer<typeof dockerOptionsSchema>;
export type DockerChanges = z.infer<typeof changesSchema>;

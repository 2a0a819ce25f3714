import { defineDriver } from "@kiln/core";
import type { Ec2Operations } from "./bake.js";
import { type Ec2Options, ec2OptionsSchema } from "./options.js";

export const ec2 = defineDriver<Ec2Options>(() => {
  // The AWS SDK takes ~300 ms to load: only a command that calls EC2 pays for it.
  let operations: Promise<Ec2Operations> | undefined;
  const load = () => (operations ??= import("./bake.js").then((module) => module.ec2Operations()));

  return {
    name: "ec2",
    schema: ec2OptionsSchema,
    // Runtime inputs travel as user data, as in a deployment; asked-for ports are opened to this host on the instance's address.
    runtimeSupport: { bootScript: true, userData: true, hostPorts: true },
    resolveSource: async (ctx, opts) => (await load()).resolveSource(ctx, opts),
    launch: async (ctx, source, opts) => (await load()).launch(ctx, source, opts),
    capture: async (ctx, machine, target, opts) => (await load()).capture(ctx, machine, target, opts),
    launchArtifact: async (ctx, artifact, runtime, opts) => (await load()).launchArtifact(ctx, artifact, runtime, opts),
    findArtifacts: async (query, opts) => (await load()).findArtifacts(query, opts),
    tag: async (artifact, reference, opts) => (await load()).tag(artifact, reference, opts),
    remove: async (artifact, opts) => (await load()).remove(artifact, opts),
  };
});

export default ec2;

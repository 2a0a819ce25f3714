import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { KilnError, type BakeContext, type FleetCall, type Machine } from "@kiln/core";
import type { DriverOperations } from "@kiln/core/kit";
import { type Access, prepareAccess, resourceName } from "./access.js";
import { Ec2Api, Ec2Clients } from "./api.js";
import { findAmis, removeArtifact, tagAmi } from "./artifacts.js";
import { captureAmi, checkAmiName } from "./capture.js";
import { launchInstance } from "./instance.js";
import { connectInstance, Ec2Machine } from "./machine.js";
import { amiName as renderAmiName } from "./names.js";
import type { Ec2Options } from "./options.js";
import { resolveSourceAmi } from "./source.js";
import { runtimeUserData } from "./user-data.js";

/** What the driver does, with the AWS SDK: loaded on the first call, so `kiln validate` and `kiln --help` never load the SDK. */
export type Ec2Operations = DriverOperations<Ec2Options>;

export function ec2Operations(): Ec2Operations {
  const clients = new Ec2Clients();
  const api = (opts: Ec2Options | undefined, ctx?: BakeContext | FleetCall) => {
    if (!opts) throw new KilnError("E_INTERNAL", "driver ec2 needs the image's options (its region) to find artefacts");
    // A bake's own calls pass their signal one by one; a fleet call's signal stops every call it makes.
    return new Ec2Api(opts, clients, ctx?.log, ctx && !("runId" in ctx) ? ctx.signal : undefined);
  };

  /** Key pair, security group and instance, then SSH: the same for a build and a verify machine. */
  async function start(
    ctx: BakeContext,
    opts: Ec2Options,
    role: "build" | "verify",
    imageId: string,
    userData: string | undefined,
    ports: number[],
    amiName: string,
  ): Promise<Ec2Machine> {
    const ec2Api = api(opts, ctx);
    const instanceName = resourceName(ctx, role);
    const access: Access = await prepareAccess(ec2Api, ctx, opts, instanceName, ports);
    const instance = await launchInstance(ec2Api, ctx, opts, { imageId, name: instanceName, access, userData });
    return connectInstance(ctx, opts, instance, access, { amiName, hasUserData: userData !== undefined, ports });
  }

  return {
    resolveSource: (ctx, opts) => resolveSourceAmi(api(opts, ctx), ctx, opts),

    async launch(ctx, source, opts) {
      const name = renderAmiName(opts.ami_name, ctx);
      // Before anything is created: a taken AMI name would otherwise only fail after provisioning.
      await checkAmiName(api(opts, ctx), ctx, opts, name);
      return start(ctx, opts, "build", source.id, await buildUserData(ctx, opts), [], name);
    },

    capture(ctx, machine, target, opts) {
      return captureAmi(api(opts, ctx), ctx, ec2Machine(machine), target, opts);
    },

    launchArtifact(ctx, artifact, runtime, opts) {
      return start(ctx, opts, "verify", artifact.id, runtimeUserData(runtime), runtime.ports ?? [], "");
    },

    findArtifacts: (query, opts, call) => findAmis(api(opts, call), query),
    tag: (artifact, reference, opts, call) => tagAmi(api(opts, call), artifact, reference),
    remove: (artifact, opts, call) => removeArtifact(api(opts, call), artifact),
  };
}

async function buildUserData(ctx: BakeContext, opts: Ec2Options): Promise<string | undefined> {
  if (opts.user_data_file === undefined) return opts.user_data;
  const path = await ctx.hostPath(opts.user_data_file, "read");
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    throw new KilnError("E_CONFIG", `cannot read user_data_file ${path}: ${(error as Error).message}`, { cause: error });
  }
}

function ec2Machine(machine: Machine): Ec2Machine {
  if (machine instanceof Ec2Machine) return machine;
  throw new KilnError("E_CAPTURE", `machine ${machine.id} was not launched by the ec2 driver`);
}

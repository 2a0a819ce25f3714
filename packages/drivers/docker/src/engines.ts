import type Docker from "dockerode";
import type { BakeContext } from "@kiln/core";
import { connect, resolveEngine } from "./engine.js";

/**
 * The engines one driver instance talks to: the one the docker CLI would use, or those the `engines` option lists, over which
 * a run deals out its bakes in turn. A bake stays on its engine from resolve to publish (its build and verify containers, its
 * image); the registry carries artefacts between engines, so a child may bake on another engine than its parent.
 */
export class EnginePool {
  /** Clients are the driver instance's: the engine the environment names is read when the instance first needs one. */
  private readonly clients = new Map<string, Promise<Docker>>();
  // Dealing is the process's: Kiln makes a driver instance per image, and one run deals its images out over the same engines.
  private readonly bakes = DEALING.bakes;
  private readonly dealt = DEALING.dealt;
  /** Which engine holds an artefact this run captured: its tags are applied there, without a pull. */
  private readonly holders = DEALING.holders;

  /** The engine a spec names: a DOCKER_HOST value (`tcp://…`, `unix://…`, `ssh://…`) or a docker context's name; "" = default. */
  client(spec = ""): Promise<Docker> {
    let client = this.clients.get(spec);
    if (!client) {
      const env = spec.includes("://") ? { ...process.env, DOCKER_HOST: spec } : contextEnv(spec);
      client = connect(spec === "" ? resolveEngine() : (resolveEngine(env) ?? null));
      // A failed connection is tried again by the next call, not remembered.
      client.catch(() => this.clients.delete(spec));
      this.clients.set(spec, client);
    }
    return client;
  }

  /** Every engine the options name (the default one when they name none). */
  all(engines: readonly string[] | undefined): Promise<Docker[]> {
    return Promise.all((engines?.length ? engines : [""]).map((spec) => this.client(spec)));
  }

  /** The engine of this bake: the first time it asks, the engine that has been dealt the fewest bakes so far. */
  forBake(ctx: Pick<BakeContext, "runId" | "image" | "planning">, engines: readonly string[] | undefined): Promise<Docker> {
    if (!engines?.length) return this.client();
    // Planning only reads: any engine answers, and no bake is dealt.
    if (ctx.planning) return this.client(engines[0]);
    const bake = `${ctx.runId}\u0000${ctx.image}`;
    let spec = this.bakes.get(bake);
    if (spec === undefined) {
      spec = [...engines].sort((a, b) => (this.dealt.get(a) ?? 0) - (this.dealt.get(b) ?? 0))[0] as string;
      this.dealt.set(spec, (this.dealt.get(spec) ?? 0) + 1);
      this.bakes.set(bake, spec);
    }
    return this.client(spec);
  }

  /** Remembers that the bake's engine holds this artefact. */
  captured(ctx: Pick<BakeContext, "runId" | "image">, id: string): void {
    const spec = this.bakes.get(`${ctx.runId}\u0000${ctx.image}`);
    if (spec !== undefined) this.holders.set(id, spec);
  }

  /** The engine to tag an artefact in: the one that holds it, else the first one listed (which pulls it from the registry). */
  forArtifact(id: string, engines: readonly string[] | undefined): Promise<Docker> {
    return this.client(this.holders.get(id) ?? engines?.[0] ?? "");
  }
}

const DEALING = { bakes: new Map<string, string>(), dealt: new Map<string, number>(), holders: new Map<string, string>() };

/** The environment that makes the docker CLI's resolution pick context `name`. */
function contextEnv(name: string): NodeJS.ProcessEnv {
  const { DOCKER_HOST: _host, ...env } = process.env;
  return { ...env, DOCKER_CONTEXT: name };
}

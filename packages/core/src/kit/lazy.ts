import type { Driver } from "../types.js";

/** The methods of a driver that talk to its platform: what `lazyDriver` loads on first use. */
export type DriverOperations<Opts> = Pick<
  Driver<Opts>,
  "resolveSource" | "launch" | "capture" | "launchArtifact" | "findArtifacts" | "tag" | "remove"
>;

/** The parts of a driver Kiln needs without touching the platform: name, schema, declared support, preflight. */
export type DriverShape<Opts> = Omit<Driver<Opts>, keyof DriverOperations<Opts>>;

/**
 * A driver whose platform code (an SDK that takes 300 ms to import) loads on the first call that needs it, so `kiln validate`
 * and `kiln plan` of an unrelated image never pay for it. A failed load is retried on the next call.
 */
export function lazyDriver<Opts>(shape: DriverShape<Opts>, load: () => Promise<DriverOperations<Opts>>): Driver<Opts> {
  let loading: Promise<DriverOperations<Opts>> | undefined;
  const operations = () => {
    loading ??= load().catch((error: unknown) => {
      loading = undefined;
      throw error;
    });
    return loading;
  };
  return {
    ...shape,
    resolveSource: async (ctx, opts) => (await operations()).resolveSource(ctx, opts),
    launch: async (ctx, source, opts) => (await operations()).launch(ctx, source, opts),
    capture: async (ctx, machine, target, opts) => (await operations()).capture(ctx, machine, target, opts),
    launchArtifact: async (ctx, artifact, runtime, opts) => (await operations()).launchArtifact(ctx, artifact, runtime, opts),
    findArtifacts: async (query, opts, call) => (await operations()).findArtifacts(query, opts, call),
    tag: async (artifact, tag, opts, call) => (await operations()).tag(artifact, tag, opts, call),
    remove: async (artifact, opts, call) => (await operations()).remove(artifact, opts, call),
  };
}

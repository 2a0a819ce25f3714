import type { ImageSpec } from "../config/load.js";
import type { RuntimeDefinition } from "../config/verify-schema.js";
import type { KilnEventInput } from "../events.js";
import type { Artifact, BakeContext } from "../types.js";
import { runChecks, runtimeInputs, verifyFailure, type CheckResult } from "./run.js";

/**
 * Proves an artefact: for each verify scenario, starts a fresh machine from it with the scenario's runtime inputs (or
 * `runtimeOverride`), runs the checks, and destroys the machine. Throws E_VERIFY listing every failed check.
 */
export async function verifyArtifact(
  ctx: BakeContext,
  image: ImageSpec,
  artifact: Artifact,
  runtimeOverride?: RuntimeDefinition,
): Promise<CheckResult[]> {
  const hostPorts = image.driver.runtimeSupport?.hostPorts ?? false;
  const results: CheckResult[] = [];
  for (const scenario of image.verify) {
    const inputs = runtimeInputs(runtimeOverride ?? scenario.runtime, scenario.checks, hostPorts);
    const machine = await image.driver.launchArtifact(ctx, artifact, inputs, image.driverOptions);
    ctx.defer(() => machine[Symbol.asyncDispose](), { resource: `verify machine ${machine.id}` });
    try {
      const onResult = (result: CheckResult) => ctx.emit(checkEvent(ctx.image, result));
      results.push(
        ...(await runChecks({ machine, scenario: scenario.name, checks: scenario.checks, signal: ctx.signal, hostPorts, onResult })),
      );
    } finally {
      // Removed now so scenarios do not pile up; if that fails, the cleanup registered above tries again and reports it,
      // and what the checks found stays the bake's outcome.
      await Promise.resolve(machine[Symbol.asyncDispose]()).catch(() => {});
    }
  }
  if (results.some((result) => !result.ok)) throw verifyFailure(image.name, results);
  return results;
}

function checkEvent(image: string, result: CheckResult): KilnEventInput {
  return {
    type: "verify.check",
    image,
    scenario: result.scenario,
    check: result.name,
    kind: result.kind,
    ok: result.ok,
    ...(result.expected !== undefined ? { expected: result.expected } : {}),
    ...(result.actual !== undefined ? { actual: result.actual } : {}),
    attempts: result.attempts,
    durationMs: result.durationMs,
  };
}

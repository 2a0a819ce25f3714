import { resolve } from "node:path";
import { KilnError } from "@kiln/core";
import { readRuntimeFile, verifyExisting } from "@kiln/core/engine";
import { parseCommandArgs } from "../args.js";
import { openProject } from "../project.js";
import { createRenderer, outputMode } from "../render/index.js";
import { writeJsonLine } from "../render/json.js";
import { shortId } from "../render/text.js";
import { stallGuard } from "../stall-guard.js";

/** `kiln verify <image|artefact>`: runs the image's verify block against an existing artefact, without baking. */
export async function verify(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs("verify", argv);
  const target = positionals[0];
  if (!target) throw new KilnError("E_CONFIG", "kiln verify needs an image name or an artefact id or tag", { hint: "kiln verify web" });
  const project = await openProject(values, undefined);
  const runtime = values["runtime-file"] ? await readRuntimeFile(resolve(values["runtime-file"])) : undefined;
  const renderer = await createRenderer(outputMode(values.json));
  const controller = new AbortController();
  const onSignal = () => controller.abort(new KilnError("E_INTERRUPTED", "interrupted"));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const stalled = stallGuard(controller);
  try {
    const result = await verifyExisting({
      project,
      target,
      ...(runtime ? { runtime } : {}),
      signal: controller.signal,
      onEvent: (event) => renderer.onEvent(event),
    });
    renderer.stop();
    const passed = result.results.filter((item) => item.ok).length;
    if (values.json) {
      writeJsonLine({
        type: "verify.result",
        image: result.image,
        artifact: result.artifact.id,
        ok: !result.error,
        passed,
        total: result.results.length,
        ...(result.error ? { error: { code: result.error.code, message: result.error.message } } : {}),
        time: new Date().toISOString(),
      });
    } else {
      const what = `${result.image} (${shortId(result.artifact.id)}${result.artifact.tags.length ? `, ${result.artifact.tags.join(", ")}` : ""})`;
      process.stdout.write(
        result.error ? `verify FAILED for ${what}:\n${result.error.message}\n` : `verified ${what}: ${passed} checks passed\n`,
      );
    }
    if (stalled.fired) return 1;
    if (controller.signal.aborted) return 130;
    return result.error ? result.error.exitCode : 0;
  } finally {
    stalled.dispose();
    renderer.stop();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

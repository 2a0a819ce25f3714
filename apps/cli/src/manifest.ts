import { writeFile } from "node:fs/promises";
import { redactDeep, type BuildResult, type Project } from "@kiln/core/engine";

export const MANIFEST_NAME = "kiln-manifest.json";

/** What a run produced, in the spirit of Packer's manifest post-processor: one entry per image, with ids, tags, keys and timings. */
export function manifestOf(result: BuildResult, project: Project, kilnVersion: string) {
  return redactDeep(
    {
      kiln_version: kilnVersion,
      run_id: result.runId,
      bake_file: project.file,
      ok: result.ok,
      builds: result.records.map((record) => ({
        image: record.image,
        driver: record.driver,
        status: record.status,
        artifact_id: record.artifact?.id ?? null,
        tags: record.artifact?.tags ?? [],
        // Where other machines fetch it (a registry), by content: what a deployment should pin.
        digests: record.artifact?.digests ?? [],
        bake_key: record.bakeKey ?? null,
        parent_id: record.parent ?? null,
        source: record.source ? { id: record.source.id, description: record.source.description, ...record.source.details } : null,
        started_at: record.startedAt,
        duration_ms: record.durationMs,
        steps: record.steps.map((step) => ({
          step: step.step,
          ...(step.detail ? { detail: step.detail } : {}),
          duration_ms: step.durationMs,
        })),
        ...(record.error ? { error: record.error } : {}),
      })),
    },
    project.redact,
  );
}

export async function writeManifest(path: string, manifest: unknown): Promise<void> {
  await writeFile(path, `${JSON.stringify(manifest, null, 2)}\n`);
}

import type { Artifact } from "./types.js";

/** The lifecycle steps of one image's bake, in order. */
export type StepName = "resolve" | "launch" | "provision" | "runtime-only" | "capture" | "verify" | "tag" | "publish";

/** Everything that happens during a run. Renderers (TTY, plain, NDJSON) and the manifest are built from these alone. */
export type KilnEvent = KilnEventInput & { time: string };

export type KilnEventInput =
  | { type: "run.start"; runId: string; images: string[] }
  | { type: "run.end"; runId: string; ok: boolean; durationMs: number; interrupted: boolean }
  | { type: "image.start"; image: string; driver: string; bakeKey: string; parent?: string }
  | { type: "image.done"; image: string; artifact: Artifact; bakeKey: string; durationMs: number; steps: StepTiming[] }
  | { type: "image.cached"; image: string; artifact: Artifact; bakeKey: string; durationMs: number; steps: StepTiming[] }
  | { type: "image.failed"; image: string; error: { code: string; message: string; hint?: string }; durationMs: number }
  | { type: "image.skipped"; image: string; reason: string }
  | { type: "step.start"; image: string; step: StepName; detail?: string }
  | { type: "step.end"; image: string; step: StepName; detail?: string; durationMs: number }
  | { type: "step.retry"; image: string; step: StepName; attempt: number; error: string; delayMs: number }
  | { type: "output"; image: string; stream: "stdout" | "stderr"; line: string }
  | {
      type: "verify.check";
      image: string;
      scenario: string;
      check: string;
      kind: string;
      ok: boolean;
      expected?: string;
      actual?: string;
      attempts: number;
      durationMs: number;
    }
  | { type: "log"; image?: string; level: "info" | "warn" | "debug"; message: string }
  | { type: "cleanup.failed"; image?: string; resource: string; error: string; manualCommand?: string }
  | {
      type: "abort.kept";
      image: string;
      machine: string;
      attachCommand: string;
      /** Everything the failed bake kept (machine, keys, temporary images), in the order to remove it, with the command to. */
      kept: { resource: string; manualCommand?: string }[];
    }
  | { type: "signal"; signal: string; force: boolean };

export interface StepTiming {
  step: StepName;
  detail?: string;
  durationMs: number;
}

export type EventListener = (event: KilnEvent) => void;

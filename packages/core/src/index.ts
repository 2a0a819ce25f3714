export * from "./errors.js";
export * from "./events.js";
export * from "./types.js";
export * from "./duration.js";
export * from "./retry.js";
export * from "./cleanup.js";
export * from "./bake-key.js";
export * from "./provenance.js";
export * from "./plugins.js";
export * from "./runner.js";
export * from "./verify/run.js";
export { runCheckOnce, type CheckOutcome, type CheckEnv } from "./verify/checks.js";
export {
  checkRuntimeOnly,
  normalizeRuntimeOnly,
  DEFAULT_SCAN_DIRS,
  type RuntimeOnly,
  type RuntimeOnlyReport,
} from "./verify/runtime-only.js";
export {
  verifySchema,
  checkSchema,
  runtimeSchema,
  checkKind,
  CHECK_KINDS,
  type Check,
  type CheckKind,
  type RuntimeDefinition,
  type VerifyScenario,
  type VerifyDefinition,
} from "./config/verify-schema.js";
export { defineConfig } from "./define-config.js";
export {
  loadProject,
  findBakeFile,
  BAKE_FILE_NAMES,
  type Project,
  type ImageSpec,
  type ProvisionStep,
  type LoadOptions,
} from "./config/load.js";
export { bakeFileSchema, durationSchema, timeoutSchema, type BakeFile, type BakeFileInput, type ImageDefinition } from "./config/schema.js";
export { bakeFileJsonSchema } from "./config/json-schema.js";
export { formatPath } from "./config/positions.js";
export { parseVarFlag, resolveVariables, interpolate, createRedactor, redactDeep, ENV_PREFIX, type VariableInputs } from "./variables.js";
export { createBakeContext, withSignal, type ContextInit, type RunnerContext } from "./context.js";
export { verifyExisting, readRuntimeFile, type VerifyExistingOptions, type VerifyExistingResult } from "./verify/existing.js";
export { verifyArtifact } from "./verify/artifact.js";
export { planBuild, type PlanEntry, type PlanOptions } from "./plan.js";
export { findByRef, findCached, findLatest, fleetCall, newest, previousSummary, resolveInputs, type ImageInputs } from "./image-inputs.js";
export * from "./fleet.js";

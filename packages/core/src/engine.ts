// The engine: loading bake files, planning, the bake runner, verify, the fleet and plugin resolution. Used by the CLI, the
// conformance suite and programs that run bakes; plugins need only `@kiln/core` and `@kiln/core/kit`.
export * from "./cleanup.js";
export { sha256, bakeKey, inputSummary, describeChanges, parseInputSummary, type BakeKeyInput, type InputSummary } from "./bake-key.js";
export { gitDescription, provenanceLabels, type ProvenanceInput } from "./provenance.js";
export {
  isPluginName,
  packageCandidates,
  loadDriverFactory,
  loadProvisionerFactory,
  FIRST_PARTY_PLUGINS,
  findInstalledPlugins,
  pluginNameOf,
  inspectPlugin,
  type InstalledPlugin,
  type PluginReport,
  type PluginStatus,
  type PluginRegistry,
  type PluginSearch,
  type PluginPackage,
  type LoadedPlugin,
} from "./plugins.js";
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
export {
  loadProject,
  findBakeFile,
  BAKE_FILE_NAMES,
  listPluginUses,
  type PluginUse,
  type PluginUses,
  type Project,
  type ImageSpec,
  type ProvisionStep,
  type LoadOptions,
} from "./config/load.js";
export { bakeFileSchema, type BakeFile, type BakeFileInput, type ImageDefinition } from "./config/schema.js";
export { bakeFileJsonSchema } from "./config/json-schema.js";
export { formatPath } from "./config/positions.js";
export { parseVarFlag, resolveVariables, interpolate, createRedactor, redactDeep, ENV_PREFIX, type VariableInputs } from "./variables.js";
export { createBakeContext, withSignal, type ContextInit, type RunnerContext } from "./context.js";
export { verifyExisting, readRuntimeFile, type VerifyExistingOptions, type VerifyExistingResult } from "./verify/existing.js";
export { verifyArtifact } from "./verify/artifact.js";
export { planBuild, type PlanEntry, type PlanOptions } from "./plan.js";
export { findByRef, findCached, findLatest, fleetCall, newest, previousSummary, resolveInputs, type ImageInputs } from "./image-inputs.js";
export * from "./fleet.js";

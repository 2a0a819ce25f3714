// The plugin API: what a driver or provisioner needs (the contract, errors, events, labels, durations). The runner, loader,
// planner, verify and fleet are `@kiln/core/engine`; the shared plugin kit is `@kiln/core/kit`.
export * from "./errors.js";
export * from "./events.js";
export * from "./types.js";
export * from "./duration.js";
export * from "./retry.js";
export { channelRepository, LABELS } from "./provenance.js";
export { canonicalJson } from "./bake-key.js";
export { pluginInit, type PluginKind } from "./plugin-init.js";
export { defineConfig } from "./define-config.js";
export { durationSchema, timeoutSchema } from "./config/durations.js";
// The one zod in the process: core bundles it, and first-party plugins build their option schemas with this `z` rather than load a
// second copy. (A third-party plugin may use its own zod or any Standard Schema library.)
export { z } from "zod";

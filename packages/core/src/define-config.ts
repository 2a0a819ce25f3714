import type { BakeFileInput } from "./config/schema.js";

/** Typed bake file for `kiln.config.ts`: `export default defineConfig({ images: { … } })`. */
export function defineConfig(config: BakeFileInput): BakeFileInput {
  return config;
}

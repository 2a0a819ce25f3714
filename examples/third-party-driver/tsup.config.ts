import { defineConfig } from "tsup";

// ESM with declarations for Node 20; @kiln/* and zod stay external (the host project's @kiln/core is the one the driver plugs into).
export default defineConfig({
  entry: ["src/index.ts"],
  format: ["esm"],
  target: "node20",
  platform: "node",
  dts: true,
  sourcemap: true,
  clean: true,
});

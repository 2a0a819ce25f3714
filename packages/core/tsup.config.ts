import { defineConfig } from "tsup";
import { tsupConfig } from "../../tsup.base.ts";

// Two entry points: the plugin API and runner (`@kiln/core`), and the plugin kit (`@kiln/core/kit`). Split, so both share one
// copy of each module (one KilnError class for instanceof).
export default defineConfig(tsupConfig({ entry: { index: "src/index.ts", "kit/index": "src/kit/index.ts" }, splitting: true }));

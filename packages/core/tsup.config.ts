import { defineConfig } from "tsup";
import { tsupConfig } from "../../tsup.base.ts";

// Three entry points: the plugin API (`@kiln/core`), the engine (`@kiln/core/engine`: loader, runner, verify, fleet) and the plugin
// kit (`@kiln/core/kit`). Split into shared chunks, so all three share one copy of each module (one KilnError class).
export default defineConfig(tsupConfig({ entry: { index: "src/index.ts", engine: "src/engine.ts", "kit/index": "src/kit/index.ts" }, splitting: true }));

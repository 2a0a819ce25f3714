import { defineConfig } from "tsup";
import { tsupConfig } from "../../../tsup.base.ts";

// Split so the AWS SDK, imported by the lazily loaded bake module only, stays out of the entry chunk.
export default defineConfig(tsupConfig({ entry: ["src/index.ts"], splitting: true }));

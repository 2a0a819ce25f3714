import { readFileSync } from "node:fs";
import { defineConfig } from "tsup";
import { tsupConfig } from "../../tsup.base.ts";

const { version } = JSON.parse(readFileSync(new URL("./package.json", import.meta.url), "utf8")) as { version: string };

// cli.ts is the binary (no declarations); index.ts is the programmatic API.
export default defineConfig(
  tsupConfig({
    entry: ["src/cli.ts", "src/index.ts"],
    splitting: true,
    define: { __KILN_VERSION__: JSON.stringify(version) },
    banner: { js: "" },
  }),
);

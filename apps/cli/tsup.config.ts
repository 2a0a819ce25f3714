import { readFileSync } from "node:fs";
import { defineConfig } from "tsup";
import { tsupConfig } from "../../tsup.base.ts";

const { version } = JSON.parse(readFileSync(new URL("./package.json", import.meta.url), "utf8")) as { version: string };

// The CLI is a binary only: commands are split into chunks loaded on demand, and no declarations are published.
export default defineConfig(
  tsupConfig({
    entry: ["src/cli.ts"],
    splitting: true,
    define: { __KILN_VERSION__: JSON.stringify(version) },
    dts: false,
  }),
);

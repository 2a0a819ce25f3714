import { readFile } from "node:fs/promises";
import { defineConfig, type Options } from "tsup";
import { tsupConfig } from "../../tsup.base.ts";

type Plugin = NonNullable<Options["esbuildPlugins"]>[number];

// zod's ~50 translations of its error messages are half its code (370 KB), and Kiln speaks English: `z.locales.<lang>()` loads the
// translation from the installed zod when first called, the English one stays bundled.
const lazyZodLocales: Plugin = {
  name: "lazy zod locales",
  setup(build) {
    // The translations themselves come from the installed package, not the bundle.
    build.onResolve({ filter: /^zod\/v4\/locales$/ }, ({ path }) => ({ path, external: true }));
    build.onLoad({ filter: /[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, async ({ path }) => {
      const names = [...(await readFile(path, "utf8")).matchAll(/export \{ default as (\w+) \} from "\.\/([\w-]+)\.js";/g)];
      if (names.length < 10) throw new Error(`${path}: no locale exports found: update tsup.config.ts`);
      const contents = names
        .map(([, name, file]) =>
          name === "en"
            ? `export { default as en } from "./${file}.js";`
            : `export const ${name} = (...args) => require("zod/v4/locales").${name}(...args);`,
        )
        .join("\n");
      return { contents, loader: "js", resolveDir: path.replace(/[\\/][^\\/]+$/, "") };
    });
  },
};

// Three entry points: the plugin API (`@kiln/core`), the engine (`@kiln/core/engine`: loader, runner, verify, fleet) and the plugin
// kit (`@kiln/core/kit`). Split into shared chunks, so all three share one copy of each module (one KilnError class).
// Third-party code is bundled in (tree-shaken): Node resolves and reads a few files instead of ~250, which was most of
// `kiln validate`'s start-up. zod stays a dependency for its types (plugins get `z` from `@kiln/core`); jiti (only for a kiln.ts)
// and re2js (only for verify patterns) stay external and load on first use.
export default defineConfig(
  tsupConfig({
    entry: { index: "src/index.ts", engine: "src/engine.ts", "kit/index": "src/kit/index.ts" },
    splitting: true,
    noExternal: ["zod", "yaml", "p-limit", "p-retry", "picomatch", "proper-lockfile", "import-meta-resolve"],
    esbuildPlugins: [lazyZodLocales],
  }),
);

import type { Options } from "tsup";

// Bundled CommonJS dependencies call `require` for Node's built-ins (and, lazily, for what stays external); an ES module has no
// `require`, so a package that bundles them gets one made for its own file.
const requireBanner = 'import { createRequire as __kilnCreateRequire } from "node:module";\nconst require = __kilnCreateRequire(import.meta.url);';

/**
 * Shared tsup settings: ESM only, declarations, Node 20. Dependencies are left external unless a package lists them in `noExternal`
 * (bundled to cut start-up: see docs/architecture.md, "Start-up"); declarations always refer to the packages.
 */
export function tsupConfig(overrides: Options = {}): Options {
  return {
    entry: ["src/index.ts"],
    format: ["esm"],
    target: "node20",
    platform: "node",
    dts: true,
    sourcemap: true,
    clean: true,
    splitting: false,
    ...(overrides.noExternal ? { banner: { js: requireBanner } } : {}),
    ...overrides,
  };
}

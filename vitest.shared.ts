import { basename, resolve } from "node:path";
import { defineConfig, mergeConfig, type ViteUserConfig } from "vitest/config";

/**
 * Settings every package's tests share: generous timeouts (real engines, a debootstrap build on a fresh machine) and a JSON
 * report per package in .test-results/, which scripts/test.sh sums into one closing line.
 */
export function vitestConfig(overrides: ViteUserConfig = {}): ViteUserConfig {
  const reportName = basename(process.cwd());
  return mergeConfig(
    defineConfig({
      test: {
        include: ["src/**/*.test.ts", "test/**/*.test.ts"],
        hookTimeout: 600_000,
        testTimeout: 120_000,
        reporters: ["default", "json"],
        outputFile: { json: resolve(import.meta.dirname, ".test-results", `${reportName}.json`) },
      },
    }),
    overrides,
  );
}

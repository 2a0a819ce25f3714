import { resolve } from "node:path";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The first run builds the Debian base with debootstrap (minutes); later runs find it in the cache.
    hookTimeout: 600_000,
    // A hang fails its test in two minutes instead of stalling the run.
    testTimeout: 120_000,
    // Inside the Kiln monorepo, a JSON report beside the other packages' (scripts/test-summary.mjs sums them).
    reporters: ["default", "json"],
    outputFile: { json: resolve(import.meta.dirname, "../../.test-results/kiln-driver-unshare.json") },
  },
});

import { resolve } from "node:path";
import { vitestConfig } from "../../vitest.shared.ts";

// Each test sets its own deadline (the conformance suites it runs take minutes); the pages' own suites fail a hung test fast.
export default vitestConfig({
  test: { include: ["*.test.ts"], outputFile: { json: resolve(import.meta.dirname, "../../.test-results/docs-tests.json") } },
});

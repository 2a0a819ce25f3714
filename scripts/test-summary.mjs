// Sums the per-package vitest JSON reports into the one closing line CI reads: "N passed, N failed, N skipped".
import { readdirSync, readFileSync } from "node:fs";

const dir = new URL("../.test-results/", import.meta.url);
let passed = 0;
let failed = 0;
let skipped = 0;
for (const name of readdirSync(dir).filter((file) => file.endsWith(".json"))) {
  const report = JSON.parse(readFileSync(new URL(name, dir), "utf8"));
  passed += report.numPassedTests;
  failed += report.numFailedTests;
  skipped += report.numPendingTests + report.numTodoTests;
}
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);

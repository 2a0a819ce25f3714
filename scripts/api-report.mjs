#!/usr/bin/env node
// API reports of the published entry points (API Extractor), checked in under api/. `--check` (in the test command) fails when
// the built .d.ts no longer matches the report, so a change to the public API shows up in review as a diff of api/*.api.md.
// Regenerate after an intended change: pnpm build && node scripts/api-report.mjs
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Extractor, ExtractorConfig } from "@microsoft/api-extractor";

const root = resolve(import.meta.dirname, "..");
const check = process.argv.includes("--check");

const ENTRY_POINTS = [
  { report: "core", packageDir: "packages/core", dts: "dist/index.d.ts" },
  { report: "core-engine", packageDir: "packages/core", dts: "dist/engine.d.ts" },
  { report: "core-kit", packageDir: "packages/core", dts: "dist/kit/index.d.ts" },
  { report: "test-suite", packageDir: "packages/test-suite", dts: "dist/index.d.ts" },
];

const reportFolder = join(root, "api");
const tempFolder = mkdtempSync(join(tmpdir(), "kiln-api-report-"));
mkdirSync(reportFolder, { recursive: true });
let failed = 0;
try {
  for (const entry of ENTRY_POINTS) {
    const packageFolder = join(root, entry.packageDir);
    const config = ExtractorConfig.prepare({
      configObject: {
        projectFolder: packageFolder,
        mainEntryPointFilePath: join(packageFolder, entry.dts),
        compiler: {
          overrideTsconfig: {
            compilerOptions: { target: "es2022", lib: ["esnext"], types: ["node"], module: "nodenext", moduleResolution: "nodenext" },
          },
        },
        apiReport: { enabled: true, reportFileName: `${entry.report}.api.md`, reportFolder, reportTempFolder: tempFolder },
        docModel: { enabled: false },
        dtsRollup: { enabled: false },
        tsdocMetadata: { enabled: false },
        messages: {
          // The report is for review; doc-comment style and forgotten re-exports are not what it guards.
          extractorMessageReporting: { default: { logLevel: "none" } },
          tsdocMessageReporting: { default: { logLevel: "none" } },
          compilerMessageReporting: { default: { logLevel: "warning" } },
        },
      },
      configObjectFullPath: join(packageFolder, "api-extractor.json"),
      packageJsonFullPath: join(packageFolder, "package.json"),
    });
    const result = Extractor.invoke(config, { localBuild: !check, showVerboseMessages: false });
    if (check && result.apiReportChanged) {
      failed++;
      const fresh = readFileSync(join(tempFolder, `${entry.report}.api.md`), "utf8");
      console.error(`api/${entry.report}.api.md is out of date: the public API of ${entry.packageDir}/${entry.dts} changed.`);
      console.error(`Review the change, then run: pnpm build && node scripts/api-report.mjs (new report: ${fresh.length} chars)`);
    } else if (!result.succeeded && !result.apiReportChanged) {
      failed++;
      console.error(`API Extractor failed on ${entry.packageDir}/${entry.dts}`);
    } else if (!check) console.log(`api/${entry.report}.api.md${result.apiReportChanged ? " updated" : " unchanged"}`);
  }
} finally {
  rmSync(tempFolder, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);

import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KilnError, type Driver, type DriverFactory, type Machine, type Provisioner, type ProvisionerFactory } from "@kiln/core";
import { createTestContext } from "./context.js";

export interface ProvisionerCase {
  name: string;
  /** Local files written (relative to the bake directory) before the case runs: path → content. */
  files?: Record<string, string>;
  options: unknown;
  /** Asserts what the provisioner did, on the machine and/or in `dir` (the bake directory). */
  check: (machine: Machine, dir: string) => Promise<void>;
}

export interface ProvisionerFixture {
  factory: ProvisionerFactory<unknown>;
  /** A real driver to run the provisioner on, and options that launch a small Linux machine. */
  machine: { factory: DriverFactory<unknown>; options: Record<string, unknown> | (() => Promise<Record<string, unknown>>) };
  /** Each case runs on a fresh machine. */
  cases: ProvisionerCase[];
  /** Options whose step must fail with a KilnError (e.g. a command exiting non-zero), and text the message must contain. */
  failing: { files?: Record<string, string>; options: unknown; message: RegExp };
  /** Options the schema must reject. */
  invalid: unknown[];
  /** A file (from `files` of the first case) whose content feeds the fingerprint, if the provisioner reads local files. */
  fingerprintFile?: string;
  timeout?: number;
}

/** The conformance suite every Kiln provisioner runs, on a real machine. */
export function testProvisioner(name: string, fixture: ProvisionerFixture): void {
  describe(`provisioner conformance: ${name}`, { timeout: fixture.timeout ?? 120_000 }, () => {
    let provisioner: Provisioner<unknown>;
    let driver: Driver<unknown>;
    let driverOptions: unknown;
    let dir: string;

    beforeAll(async () => {
      provisioner = fixture.factory();
      driver = fixture.machine.factory({ cwd: process.cwd() });
      const raw = typeof fixture.machine.options === "function" ? await fixture.machine.options() : fixture.machine.options;
      driverOptions = ((await driver.schema["~standard"].validate(raw)) as { value: unknown }).value;
      dir = await mkdtemp(join(tmpdir(), "kiln-provisioner-test-"));
    }, 600_000);
    afterAll(() => rm(dir, { recursive: true, force: true }));

    const validated = async (options: unknown) => {
      const result = await provisioner.schema["~standard"].validate(options);
      if (result.issues) throw new Error(`options rejected: ${result.issues.map((issue) => issue.message).join("; ")}`);
      return result.value;
    };
    const writeFiles = async (files: Record<string, string> = {}) => {
      for (const [path, content] of Object.entries(files)) {
        await mkdir(dirname(join(dir, path)), { recursive: true });
        await writeFile(join(dir, path), content);
      }
    };

    it("rejects invalid options", async () => {
      for (const options of fixture.invalid) {
        const result = await provisioner.schema["~standard"].validate(options);
        expect(result.issues, `expected ${JSON.stringify(options)} to be rejected`).toBeDefined();
      }
    });

    it("fingerprints its inputs: stable, and changed when the content it reads changes", async () => {
      const first = fixture.cases[0];
      if (!first) throw new Error("testProvisioner needs at least one case");
      await writeFiles(first.files);
      await using test = createTestContext({ cwd: dir });
      const options = await validated(first.options);
      const before = await provisioner.fingerprint(test.ctx, options);
      expect(await provisioner.fingerprint(test.ctx, options)).toBe(before);
      if (fixture.fingerprintFile) {
        await writeFile(join(dir, fixture.fingerprintFile), `${first.files?.[fixture.fingerprintFile] ?? ""}\n# changed`);
        expect(await provisioner.fingerprint(test.ctx, options)).not.toBe(before);
        await writeFiles(first.files);
      }
    });

    for (const testCase of fixture.cases) {
      it(`runs on a real machine: ${testCase.name}`, async () => {
        await writeFiles(testCase.files);
        await using test = createTestContext({ cwd: dir });
        const source = await driver.resolveSource(test.ctx, driverOptions);
        await using machine = await driver.launch(test.ctx, source, driverOptions);
        await provisioner.run(test.ctx, machine, await validated(testCase.options));
        await testCase.check(machine, dir);
      });
    }

    it("fails the step with a clear KilnError", async () => {
      await writeFiles(fixture.failing.files);
      await using test = createTestContext({ cwd: dir });
      const source = await driver.resolveSource(test.ctx, driverOptions);
      await using machine = await driver.launch(test.ctx, source, driverOptions);
      const error = await provisioner.run(test.ctx, machine, await validated(fixture.failing.options)).then(() => undefined, (thrown: unknown) => thrown);
      expect(error).toBeInstanceOf(KilnError);
      expect((error as KilnError).message).toMatch(fixture.failing.message);
    });
  });
}

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KilnError, type Driver, type DriverFactory, type Machine, type Provisioner, type ProvisionerFactory } from "@kiln/core";
import { createTestContext, testPluginInit } from "./context.js";
import { writeFiles } from "./files.js";

export interface ProvisionerCase {
  name: string;
  /** Local files written (relative to the bake directory) before the case runs: path → content. */
  files?: Record<string, string>;
  options: unknown;
  /** Asserts what the provisioner did, on the machine and/or in `dir` (the bake directory). */
  check: (machine: Machine, dir: string) => Promise<void>;
}

/** A real driver to run the provisioner on, and options that launch a small Linux machine. */
export interface ProvisionerMachine {
  factory: DriverFactory<unknown>;
  options: Record<string, unknown> | (() => Promise<Record<string, unknown>>);
}

export interface ProvisionerFixture {
  factory: ProvisionerFactory<unknown>;
  /**
   * The machines every case runs on, by a name for the test titles: at least a container and a machine reached over SSH as
   * a non-root login with sudo (as on EC2 and Vagrant), where files and commands behave differently.
   */
  machines: Record<string, ProvisionerMachine>;
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
    let dir: string;

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), "kiln-provisioner-test-"));
      provisioner = fixture.factory(testPluginInit("provisioner", name, { cwd: dir, stateDir: join(dir, ".state") }));
    }, 600_000);
    afterAll(() => rm(dir, { recursive: true, force: true }));

    const validated = async (options: unknown) => {
      const result = await provisioner.schema["~standard"].validate(options);
      if (result.issues) throw new Error(`options rejected: ${result.issues.map((issue) => issue.message).join("; ")}`);
      return result.value;
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
      await writeFiles(dir, first.files);
      await using test = createTestContext({ cwd: dir });
      const options = await validated(first.options);
      const before = await provisioner.fingerprint(test.ctx, options);
      expect(await provisioner.fingerprint(test.ctx, options)).toBe(before);
      if (fixture.fingerprintFile) {
        await writeFile(join(dir, fixture.fingerprintFile), `${first.files?.[fixture.fingerprintFile] ?? ""}\n# changed`);
        expect(await provisioner.fingerprint(test.ctx, options)).not.toBe(before);
        await writeFiles(dir, first.files);
      }
    });

    for (const [machineName, machine] of Object.entries(fixture.machines)) {
      describe(`on ${machineName}`, () => {
        let driver: Driver<unknown>;
        let driverOptions: unknown;

        beforeAll(async () => {
          driver = machine.factory(testPluginInit("driver", machineName, { cwd: dir, stateDir: join(dir, ".state", "driver") }));
          const raw = typeof machine.options === "function" ? await machine.options() : machine.options;
          driverOptions = ((await driver.schema["~standard"].validate(raw)) as { value: unknown }).value;
        }, 600_000);

        const launch = async (test: ReturnType<typeof createTestContext>): Promise<Machine> =>
          driver.launch(test.ctx, await driver.resolveSource(test.ctx, driverOptions), driverOptions);

        for (const testCase of fixture.cases) {
          it(`runs: ${testCase.name}`, async () => {
            await writeFiles(dir, testCase.files);
            await using test = createTestContext({ cwd: dir });
            await using target = await launch(test);
            await provisioner.run(test.ctx, target, await validated(testCase.options));
            await testCase.check(target, dir);
          });
        }

        it("fails the step with a clear KilnError", async () => {
          await writeFiles(dir, fixture.failing.files);
          await using test = createTestContext({ cwd: dir });
          await using target = await launch(test);
          const error = await provisioner.run(test.ctx, target, await validated(fixture.failing.options)).then(
            () => undefined,
            (thrown: unknown) => thrown,
          );
          expect(error).toBeInstanceOf(KilnError);
          expect((error as KilnError).message).toMatch(fixture.failing.message);
        });
      });
    }
  });
}

import docker from "@kiln/driver-docker";
import { ensureFixtureImage } from "@kiln/driver-docker/testing";
import type { Machine } from "@kiln/core";
import type { TestContext } from "@kiln/test-suite";

/** Docker driver options that start the shared fixture image (Debian bookworm minbase + python3). */
export async function fixtureOptions(): Promise<{ source: string }> {
  return { source: await ensureFixtureImage() };
}

/**
 * A fresh build container from the fixture image. It carries the test's `dev.kiln.build` label (the driver puts
 * `ctx.resourceLabels` on it); dispose it with `await using`, and the test context removes it too if disposal is skipped.
 */
export async function launchFixture(test: TestContext): Promise<Machine> {
  const driver = docker({ cwd: process.cwd() });
  const options = await fixtureOptions();
  return driver.launch(test.ctx, await driver.resolveSource(test.ctx, options), options);
}

/** Runs a command on the machine and returns its stdout; throws with stderr when it fails, so assertions stay short. */
export async function sh(machine: Machine, command: string): Promise<string> {
  const result = await machine.exec(command, { user: "root" });
  if (result.exitCode !== 0) throw new Error(`\`${command}\` exited with ${result.exitCode}: ${result.stderr}`);
  return result.stdout;
}

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KilnError, type Machine } from "@kiln/core";
import { createTestContext, execOk, testPluginInit, writeFiles } from "@kiln/test-suite";
import { fixtureOptions, launchFixture } from "@kiln/driver-docker/testing";
import chef, { type ChefOptions } from "../src/index.js";
import { DATA_BAG_SECRET, expectNothingLeft, FULL_OPTIONS, PROJECT, standinResult } from "./standin.js";

// chef-solo in these tests is Kiln's STAND-IN (test/fixtures/chef-solo-standin.py), installed through install_command,
// because no Chef or Cinc package can be installed on the machine that runs them. What is tested is what Kiln does.
const provisioner = chef(testPluginInit("provisioner", "chef"));
let dir: string;

beforeAll(async () => {
  await fixtureOptions(); // builds the fixture image on first use, under the long hook timeout
  dir = await mkdtemp(join(tmpdir(), "kiln-chef-it-"));
  await writeFiles(dir, PROJECT);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

type Step = { options: unknown; output: string[]; error: KilnError | undefined };

/** Runs the steps, one after another, on one fresh container, then hands it to `check` with each step's outcome. */
async function onContainer(inputs: unknown[], check: (machine: Machine, steps: Step[]) => Promise<void>) {
  await using test = createTestContext({ cwd: dir });
  await using machine = await launchFixture(test.ctx);
  const steps: Step[] = [];
  for (const input of inputs) {
    const result = await provisioner.schema["~standard"].validate(input);
    if (result.issues) throw new Error(`invalid options: ${JSON.stringify(result.issues)}`);
    const before = test.output().length;
    const error = await provisioner.run(test.ctx, machine, result.value as ChefOptions).then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    if (error !== undefined && !(error instanceof KilnError)) throw error;
    steps.push({ options: input, output: test.output().slice(before), error });
  }
  await check(machine, steps);
}

const failed = (step: Step | undefined): KilnError => {
  expect(step?.error).toBeInstanceOf(KilnError);
  return step?.error as KilnError;
};

describe("chef provisioner with the stand-in chef-solo, on a real container", () => {
  it("stand-in FATAL: the step fails with the exit code and FATAL line, output is streamed, staging and secret are removed", async () => {
    await onContainer([{ ...FULL_OPTIONS, run_list: ["recipe[app::fail]"] }], async (machine, [step]) => {
      const error = failed(step);
      expect(error.code).toBe("E_PROVISION");
      expect(error.message).toMatch(/^chef: chef-solo \(run_list recipe\[app::fail\]\) exited with code 1\nlast output:\n/);
      expect(error.message).toMatch(/^ {2}\[.*\] FATAL: Mixlib::ShellOut::ShellCommandFailed: execute\[fail\]/m);
      expect(error.message).toMatch(/^ {2}.*ERROR: execute\[fail\]/m);
      expect(error.hint).toMatch(/FATAL and ERROR lines/);
      expect(step?.output).toContain("Recipe: app::fail");
      expect(step?.output).toContain("installed stand-in chef-solo");
      expect(await execOk(machine, "test -e /etc/kiln-chef-standin.json && echo yes || echo no")).toBe("no\n");
      await expectNothingLeft(machine);
    });
  });

  it("hides the data bag secret in streamed output and error messages, even if the (stand-in) client prints it", async () => {
    await onContainer([{ ...FULL_OPTIONS, run_list: ["recipe[app::leak_secret]", "recipe[app::fail]"] }], async (machine, [step]) => {
      const error = failed(step);
      expect(step?.output).toContain("  the secret is <sensitive>");
      expect(JSON.stringify(step?.output)).not.toContain(DATA_BAG_SECRET);
      expect(error.message).toContain("the secret is <sensitive>");
      expect(error.message).not.toContain(DATA_BAG_SECRET);
      await expectNothingLeft(machine);
    });
  });

  it("clean_staging_directory: false keeps cookbooks and solo.rb in staging_directory, but never the secret or the node JSON", async () => {
    const staging = "/var/tmp/kiln chef 'staging'";
    await onContainer([{ ...FULL_OPTIONS, staging_directory: staging, clean_staging_directory: false }], async (machine) => {
      const result = await standinResult(machine);
      expect(result.staging).toBe(staging);
      expect(result.encrypted_data_bag_secret).toBe(true);
      const listing = await execOk(machine, `cd "/var/tmp/kiln chef 'staging'" && find . -maxdepth 2 | sort`);
      expect(listing.split("\n")).toEqual(
        expect.arrayContaining(["./solo.rb", "./cookbooks-0/app", "./cookbooks-1/base", "./roles/web.json"]),
      );
      expect(listing).not.toMatch(/encrypted_data_bag_secret|node\.json|install\.sh|nodes/);
      expect(await execOk(machine, `stat -c '%a %U' "/var/tmp/kiln chef 'staging'"`)).toBe("700 root\n");
      expect(await execOk(machine, `grep -c '/var/tmp/kiln chef' "/var/tmp/kiln chef 'staging'/solo.rb"`)).not.toBe("0\n");
      expect(await execOk(machine, `grep -rlsF '${DATA_BAG_SECRET}' /var /tmp /etc /root || true`)).toBe("");
    });
  });

  it("refuses a staging_directory that already holds files, and leaves them alone", async () => {
    await onContainer(
      [
        { ...FULL_OPTIONS, install_command: "mkdir -p /srv/stage && echo keep > /srv/stage/mine" },
        { ...FULL_OPTIONS, staging_directory: "/srv/stage" },
      ],
      async (machine, [first, second]) => {
        // The first step only ran install_command (which installs no client), so it failed saying so.
        expect(failed(first).message).toMatch(/^chef: install_command ran, but neither cinc-solo nor chef-solo is on machine /);
        const error = failed(second);
        expect(error.message).toMatch(/^chef: staging_directory \/srv\/stage already exists on machine \S+ and is not empty$/);
        expect(error.hint).toMatch(/must be new or empty/);
        expect(await execOk(machine, "cat /srv/stage/mine")).toBe("keep\n");
      },
    );
  });

  it("without a client: fails naming install_command (with omnitruck/cinc examples); skip_install says so", async () => {
    const { install_command: _install, ...noInstall } = FULL_OPTIONS;
    await onContainer([noInstall, { ...noInstall, skip_install: true }], async (machine, [plain, skipped]) => {
      const error = failed(plain);
      expect(error.code).toBe("E_PROVISION");
      expect(error.message).toMatch(/^chef: neither cinc-solo nor chef-solo is installed on machine \S+$/);
      expect(error.hint).toContain("set install_command");
      expect(error.hint).toContain("https://omnitruck.cinc.sh/install.sh");
      expect(error.hint).toContain("https://omnitruck.chef.io/install.sh");
      expect(failed(skipped).hint).toMatch(/^skip_install is set/);
      await expectNothingLeft(machine);
    });
  });

  it("a failing install_command fails the step with its exit code and output, and is removed with the staging directory", async () => {
    await onContainer(
      [{ ...FULL_OPTIONS, install_command: "echo downloading client\necho 'curl: (6) Could not resolve host' >&2\nexit 6" }],
      async (machine, [step]) => {
        const error = failed(step);
        // stdout and stderr travel separately: their lines may arrive in either order.
        const [head, ...lines] = error.message.split("\nlast output:\n");
        expect(head).toBe("chef: install_command exited with code 6");
        expect(lines.join("").split("\n").sort()).toEqual(["  curl: (6) Could not resolve host", "  downloading client"]);
        expect(error.hint).toMatch(/fix install_command/);
        await expectNothingLeft(machine);
      },
    );
  });

  it("runs install_command only when the client is missing; passes extra_arguments and CHEF_LICENSE (the stand-in chef-solo needs it)", async () => {
    const later = { ...FULL_OPTIONS, install_command: "echo reinstalling; exit 9", extra_arguments: ["-l", "debug"] };
    const { chef_license: _license, ...unlicensed } = later;
    await onContainer([FULL_OPTIONS, later, unlicensed], async (machine, [first, second, third]) => {
      expect(first?.error).toBeUndefined();
      expect(second?.error).toBeUndefined();
      expect(second?.output).not.toContain("reinstalling");
      const result = await standinResult(machine);
      expect(result.arguments.slice(-2)).toEqual(["-l", "debug"]);
      expect(result.log_level).toBe("debug");
      expect(result.no_color).toBe(true);
      expect(result.chef_license).toBe("accept-no-persist");
      expect(failed(third).message).toMatch(/FATAL: Chef Infra Client cannot execute without accepting the license/);
      await expectNothingLeft(machine);
    });
  });

  it("reports a staged cookbook missing the named recipe through the stand-in's FATAL line", async () => {
    await onContainer([{ ...FULL_OPTIONS, run_list: ["recipe[app::nope]"] }], async (machine, [step]) => {
      expect(failed(step).message).toMatch(/FATAL: Chef::Exceptions::RecipeNotFound: could not find recipe nope for cookbook app/);
      await expectNothingLeft(machine);
    });
  });

  it("an interrupted step (Ctrl-C, timeout) still removes the staging directory and the secret before it returns", async () => {
    const abort = new AbortController();
    await using test = createTestContext({ cwd: dir, signal: abort.signal });
    await using machine = await launchFixture(test.ctx);
    const options = (await provisioner.schema["~standard"].validate({ ...FULL_OPTIONS, run_list: ["recipe[app::sleep]"] })) as {
      value: ChefOptions;
    };
    const running = provisioner.run(test.ctx, machine, options.value).then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    // Abort once the (stand-in) client is inside its sleeping recipe: the staging directory and the secret exist then.
    while (!test.output().includes("  * execute[sleep 60] action run")) {
      if (await Promise.race([running.then(() => true), new Promise((resolve) => setTimeout(() => resolve(false), 50))]))
        throw new Error(`the step ended before it was interrupted: ${String(await running)}`);
    }
    expect(await execOk(machine, "ls -d /tmp/kiln-chef-*/encrypted_data_bag_secret")).toMatch(
      /^\/tmp\/kiln-chef-\w+\/encrypted_data_bag_secret\n$/,
    );
    abort.abort(new KilnError("E_INTERRUPTED", "interrupted"));
    expect(await running).toMatchObject({ code: "E_INTERRUPTED" });
    await expectNothingLeft(machine);
  });
});

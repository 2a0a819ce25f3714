import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KilnError } from "@kiln/core";
import { createTestContext, execOk, testPluginInit } from "@kiln/test-suite";
import shell, { type ShellOptions } from "../src/index.js";
import { fixtureOptions, launchFixture } from "@kiln/driver-docker/testing";

const provisioner = shell(testPluginInit("provisioner", "shell"));
let dir: string;

beforeAll(async () => {
  await fixtureOptions(); // builds the fixture image on first use, under the long hook timeout
  dir = await mkdtemp(join(tmpdir(), "kiln-shell-it-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Validates options like the loader does, runs the step on a fresh container, then hands the container to `check`. */
async function provision(input: unknown, check?: (machine: Awaited<ReturnType<typeof launchFixture>>, output: string[]) => Promise<void>) {
  const result = await provisioner.schema["~standard"].validate(input);
  if (result.issues) throw new Error(`invalid options: ${JSON.stringify(result.issues)}`);
  await using test = createTestContext({ cwd: dir });
  await using machine = await launchFixture(test.ctx);
  await provisioner.run(test.ctx, machine, result.value as ShellOptions);
  await check?.(machine, test.output());
}

/** Like `provision`, but the step must fail: returns the KilnError. */
async function failure(input: unknown): Promise<KilnError> {
  const error = await provision(input).then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(KilnError);
  return error as KilnError;
}

describe("shell provisioner on a real container", () => {
  it("runs inline commands in order, streams their output and removes its temporary script", async () => {
    await provision({ inline: ["echo one > /tmp/order", "echo two >> /tmp/order", "echo visible-output"] }, async (machine, output) => {
      expect(await execOk(machine, "cat /tmp/order")).toBe("one\ntwo\n");
      expect(output).toContain("visible-output");
      expect(await execOk(machine, "ls /tmp | grep '^kiln-' || true")).toBe("");
    });
  });

  it("gives the commands an empty stdin, as a build step has", async () => {
    // The script travels to the machine on the command's stdin: the commands themselves must still read nothing from it.
    await provision({ inline: ["cat > /tmp/stdin-seen"] }, async (machine) => {
      expect(await execOk(machine, "cat /tmp/stdin-seen | wc -c")).toBe("0\n");
    });
  });

  it("stops inline commands at the first failure (sh -e)", async () => {
    const error = await failure({ inline: ["touch /tmp/first", "false", "touch /tmp/never"] });
    expect(error.code).toBe("E_PROVISION");
    expect(error.message).toMatch(/inline commands \["touch \/tmp\/first", "false", "touch \/tmp\/never"\] exited with code 1/);
  });

  it("fails with the exit code and the last ~10 output lines, always including the final stderr lines", async () => {
    const error = await failure({ inline: ["for i in $(seq 1 30); do echo line$i; done", "echo boom >&2", "exit 7"] });
    expect(error.code).toBe("E_PROVISION");
    expect(error.message).toContain("exited with code 7\nlast output:\n");
    // stdout and stderr arrive on separate pipes, so "boom" may come before or after the last stdout lines.
    const tail = error.message.split("last output:\n")[1]?.split("\n") ?? [];
    expect(tail).toEqual(expect.arrayContaining(["  line22", "  line30", "  boom"]));
    expect(tail.length).toBeLessThanOrEqual(11);
    expect(error.message).not.toMatch(/line20\b/);
  });

  it("accepts the exit codes listed in valid_exit_codes, and only those", async () => {
    await provision({ inline: ["touch /tmp/ran", "exit 3"], valid_exit_codes: [0, 3] }, async (machine) => {
      await execOk(machine, "test -e /tmp/ran");
    });
    const error = await failure({ inline: ["true"], valid_exit_codes: [3] });
    expect(error.message).toContain("exited with code 0");
    expect(error.hint).toContain("accepted exit codes: 3");
  });

  it("gives env to the commands without putting values on the command line or in errors", async () => {
    const env = { GREETING: "hello 'quoted' world", API_TOKEN: "s3cr3t-value" };
    // Every process's command line while the step runs, to prove the value is not on any of them.
    const commandLines = `for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < "$f"; echo; done > /tmp/cmdlines`;
    await provision(
      { inline: ['printf %s "$GREETING" > /tmp/greeting', "printenv API_TOKEN > /tmp/token", commandLines], env },
      async (machine) => {
        expect(await execOk(machine, "cat /tmp/greeting")).toBe("hello 'quoted' world");
        expect(await execOk(machine, "cat /tmp/token")).toBe("s3cr3t-value\n");
        const processes = await execOk(machine, "cat /tmp/cmdlines");
        expect(processes).toMatch(/API_TOKEN="\$API_TOKEN" .*\/tmp\/kiln-/);
        expect(processes).not.toContain("s3cr3t-value");
      },
    );
    const error = await failure({ inline: ["exit 9"], env });
    expect(error.message).not.toContain("s3cr3t-value");
    expect(error.hint ?? "").not.toContain("s3cr3t-value");
  });

  it("keeps env through a custom execute_command that clears the environment ({{ vars }}), Packer syntax too", async () => {
    const inline = ["printenv MODE > /tmp/mode", "echo ran-$MODE"];
    await provision(
      { inline, env: { MODE: "custom" }, execute_command: "echo via-custom && env -i {{ vars }} {{ path }}" },
      async (machine, output) => {
        expect(output).toEqual(expect.arrayContaining(["via-custom", "ran-custom"]));
        expect(await execOk(machine, "cat /tmp/mode")).toBe("custom\n");
      },
    );
    await provision({ inline, env: { MODE: "packer" }, execute_command: "env -i {{ .Vars }} {{ .Path }}" }, async (machine) => {
      expect(await execOk(machine, "cat /tmp/mode")).toBe("packer\n");
    });
  });

  it("uploads and runs scripts in order, by their shebang, and names the failing script", async () => {
    await writeFile(join(dir, "first.sh"), "#!/bin/sh\necho first >> /tmp/order\n");
    await writeFile(join(dir, "second.py"), "#!/usr/bin/env python3\nopen('/tmp/order', 'a').write('second\\n')\n");
    await writeFile(join(dir, "broken.sh"), "#!/bin/sh\necho about to fail\nexit 42\n");
    await provision({ scripts: ["first.sh", "second.py"] }, async (machine) => {
      expect(await execOk(machine, "cat /tmp/order")).toBe("first\nsecond\n");
      expect(await execOk(machine, "ls /tmp | grep '^kiln-' || true")).toBe("");
    });
    await provision({ script: "first.sh" }, async (machine) => {
      expect(await execOk(machine, "cat /tmp/order")).toBe("first\n");
    });
    const error = await failure({ scripts: ["first.sh", "broken.sh", "second.py"] });
    expect(error.message).toMatch(/script broken\.sh exited with code 42\nlast output:\n {2}about to fail/);
  });

  it("reports a script missing at run time as E_CONFIG", async () => {
    const error = await failure({ script: "not-there.sh" });
    expect(error).toMatchObject({ code: "E_CONFIG" });
    expect(error.message).toContain("not-there.sh");
  });

  it("runs as `user` in `cwd`", async () => {
    await provision({ inline: ["id -un > /tmp/who", "pwd > /tmp/where"], user: "nobody", cwd: "/usr/share" }, async (machine) => {
      expect(await execOk(machine, "cat /tmp/who /tmp/where")).toBe("nobody\n/usr/share\n");
      expect(await execOk(machine, "stat -c %U /tmp/who")).toBe("nobody\n");
    });
  });

  it("with expect_disconnect, accepts the machine going away, but not an ordinary failure", async () => {
    // `kill 1` stops the container the way a reboot or shutdown drops the connection.
    await provision({ inline: ["echo going down", "kill 1", "sleep 30"], expect_disconnect: true });
    const gone = await failure({ inline: ["kill 1", "sleep 30"] });
    expect(gone.message).toMatch(/exited with code \d+/);
    const stillUp = await failure({ inline: ["exit 4"], expect_disconnect: true });
    expect(stillUp.message).toContain("exited with code 4");
  });
});

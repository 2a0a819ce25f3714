import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KilnError } from "@kiln/core";
import { createTestContext, testPluginInit } from "@kiln/test-suite";
import { renderCommand, shell, type ShellOptions } from "./shell.js";

const provisioner = shell(testPluginInit("provisioner", "shell"));
const validate = async (input: unknown) => provisioner.schema["~standard"].validate(input);
const messages = async (input: unknown) => ((await validate(input)).issues ?? []).map((issue) => issue.message).join("; ");

describe("shell options", () => {
  it("accepts each way of saying what to run, with every option", async () => {
    for (const input of [
      { inline: ["echo hi"] },
      { script: "setup.sh" },
      { scripts: ["a.sh", "b.sh"] },
      {
        inline: ["true"],
        env: { APP_ENV: "prod", _X1: "" },
        execute_command: "sudo -E {{ vars }} {{ path }}",
        expect_disconnect: true,
        valid_exit_codes: [0, 2],
        user: "nobody",
        cwd: "/srv",
      },
      { inline: ["true"], execute_command: "sh -c '{{ .Vars }} {{ .Path }}'" },
    ]) {
      expect((await validate(input)).issues, JSON.stringify(input)).toBeUndefined();
    }
  });

  it("requires exactly one of inline, script and scripts", async () => {
    expect(await messages({})).toMatch(/exactly one of inline, script or scripts/);
    expect(await messages({ inline: ["true"], script: "a.sh" })).toMatch(/exactly one/);
    expect(await messages({ script: "a.sh", scripts: ["b.sh"] })).toMatch(/exactly one/);
  });

  it("rejects empty lists, unknown keys, bad env names, bad exit codes and unknown placeholders", async () => {
    expect((await validate({ inline: [] })).issues).toBeDefined();
    expect((await validate({ scripts: [] })).issues).toBeDefined();
    expect((await validate({ inline: ["true"], environment: {} })).issues).toBeDefined();
    expect(await messages({ inline: ["true"], env: { "NOT-OK": "x" } })).toMatch(/"NOT-OK" is not a shell variable name/);
    expect((await validate({ inline: ["true"], env: { A: 1 } })).issues).toBeDefined();
    expect((await validate({ inline: ["true"], valid_exit_codes: [1.5] })).issues).toBeDefined();
    expect(await messages({ inline: ["true"], execute_command: "{{ path }} {{ script }}" })).toMatch(/only the placeholders/);
    expect(await messages({ inline: ["true"], execute_command: "echo {{ vars }}" })).toMatch(/must run \{\{ path \}\}/);
  });
});

describe("renderCommand", () => {
  it("puts the script path in and refers to env by name only, so values never reach the command line", () => {
    expect(renderCommand("{{ vars }} {{ path }}", "/tmp/kiln-1-a.sh", [])).toBe("/tmp/kiln-1-a.sh");
    const command = renderCommand("sudo {{vars}} {{ path }}", "/tmp/kiln-1-a.sh", ["TOKEN", "MODE"]);
    expect(command).toBe('sudo TOKEN="$TOKEN" MODE="$MODE" /tmp/kiln-1-a.sh');
    expect(renderCommand("chmod +x {{ .Path }} && {{ .Vars }} {{ .Path }}", "/tmp/x y.sh", ["A"])).toBe(
      `chmod +x '/tmp/x y.sh' && A="$A" '/tmp/x y.sh'`,
    );
  });
});

describe("shell fingerprint", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "kiln-shell-unit-"));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const fingerprint = async (opts: ShellOptions, cwd = dir) => {
    await using test = createTestContext({ cwd });
    return provisioner.fingerprint(test.ctx, opts);
  };

  it("is stable, and changes when a script's content changes", async () => {
    await writeFile(join(dir, "a.sh"), "echo a\n");
    await writeFile(join(dir, "b.sh"), "echo b\n");
    const opts = { scripts: ["a.sh", "b.sh"] };
    const before = await fingerprint(opts);
    expect(before).toMatch(/^[0-9a-f]{64}$/);
    expect(await fingerprint(opts)).toBe(before);
    await writeFile(join(dir, "b.sh"), "echo b changed\n");
    const after = await fingerprint(opts);
    expect(after).not.toBe(before);
    await writeFile(join(dir, "b.sh"), "echo b\n");
    expect(await fingerprint(opts)).toBe(before);
  });

  it("changes with the options (order of scripts, env, commands)", async () => {
    await writeFile(join(dir, "a.sh"), "echo a\n");
    await writeFile(join(dir, "b.sh"), "echo b\n");
    expect(await fingerprint({ scripts: ["a.sh", "b.sh"] })).not.toBe(await fingerprint({ scripts: ["b.sh", "a.sh"] }));
    expect(await fingerprint({ inline: ["true"], env: { A: "1" } })).not.toBe(await fingerprint({ inline: ["true"], env: { A: "2" } }));
    expect(await fingerprint({ inline: ["echo 1"] })).not.toBe(await fingerprint({ inline: ["echo 2"] }));
  });

  it("does not depend on where the bake directory is", async () => {
    const other = await mkdtemp(join(tmpdir(), "kiln-shell-unit-other-"));
    try {
      await writeFile(join(dir, "a.sh"), "echo a\n");
      await writeFile(join(other, "a.sh"), "echo a\n");
      expect(await fingerprint({ script: "a.sh" }, other)).toBe(await fingerprint({ script: "a.sh" }));
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  it("reports a missing script as E_CONFIG with the path and a hint", async () => {
    const error = await fingerprint({ scripts: ["scripts/missing.sh"] }).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(KilnError);
    expect(error).toMatchObject({ code: "E_CONFIG", exitCode: 2 });
    expect((error as KilnError).message).toContain("scripts/missing.sh");
    expect((error as KilnError).message).toContain(join(dir, "scripts/missing.sh"));
    expect((error as KilnError).hint).toMatch(/relative to the bake file's directory/);
  });
});

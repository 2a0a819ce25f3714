import { KilnError, type BakeContext, type ExecOptions, type Machine } from "@kiln/core";
import { indent } from "./output.js";
import type { PuppetOptions } from "./puppet.js";

/** Runs a command as root, streaming its output; returns the exit code and the text it printed. */
async function run(
  ctx: BakeContext,
  machine: Machine,
  cmd: string | string[],
  options: Omit<ExecOptions, "user" | "signal" | "onOutput"> = {},
): Promise<{ exitCode: number; text: string }> {
  let text = "";
  const result = await machine.exec(cmd, {
    ...options,
    user: "root",
    signal: ctx.signal,
    onOutput: (stream, chunk) => {
      if (text.length < 1024 * 1024) text += chunk;
      ctx.output(stream, chunk);
    },
  });
  return { exitCode: result.exitCode, text };
}

/** The puppet executable: `puppet_bin_dir/puppet`, else puppet on root's PATH, else Puppet's own packages' place. */
const FIND_PUPPET = `if [ -n "$1" ]; then [ -x "$1/puppet" ] && echo "$1/puppet"; exit 0; fi
for p in "$(command -v puppet 2>/dev/null)" /opt/puppetlabs/bin/puppet; do
  if [ -n "$p" ] && [ -x "$p" ]; then echo "$p"; exit 0; fi
done`;

async function findPuppet(machine: Machine, ctx: BakeContext, binDir: string | undefined): Promise<string | undefined> {
  const result = await machine.exec(["/bin/sh", "-c", FIND_PUPPET, "sh", binDir ?? ""], { user: "root", signal: ctx.signal });
  const found = result.stdout.trim().split("\n").pop();
  return result.exitCode === 0 && found ? found : undefined;
}

export async function findOrInstallPuppet(
  ctx: BakeContext,
  machine: Machine,
  opts: Pick<PuppetOptions, "install" | "puppet_bin_dir">,
): Promise<string> {
  const found = await findPuppet(machine, ctx, opts.puppet_bin_dir);
  if (found) return found;
  if (opts.install) {
    await installPuppet(ctx, machine);
    const installed = await findPuppet(machine, ctx, opts.puppet_bin_dir);
    if (installed) return installed;
  }
  const where = opts.puppet_bin_dir ? `in ${opts.puppet_bin_dir} (puppet_bin_dir)` : "on root's PATH or in /opt/puppetlabs/bin";
  throw new KilnError(
    "E_PROVISION",
    `puppet: puppet not found on machine ${machine.id} ${where}${opts.install ? " after installing the puppet package" : ""}`,
    {
      hint: opts.install
        ? "the puppet package did not provide it there: check puppet_bin_dir"
        : "set install: true to install the puppet package with apt-get, bake from an image that has it, or point puppet_bin_dir at its directory",
    },
  );
}

const APT_ERROR = /^(E|Err):/m;

/** `apt-get update` + `apt-get install -y puppet`. apt-get update exits 0 even when every fetch failed: its output says so. */
async function installPuppet(ctx: BakeContext, machine: Machine): Promise<void> {
  const hasApt = await machine.exec(["/bin/sh", "-c", "command -v apt-get"], { user: "root", signal: ctx.signal });
  if (hasApt.exitCode !== 0)
    throw new KilnError("E_PROVISION", `puppet: install: true needs apt-get, and machine ${machine.id} has none`, {
      hint: "install puppet in the source image (or with a shell step) and leave install off, or set puppet_bin_dir",
    });
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  ctx.log.info("puppet: installing the puppet package (apt-get update, apt-get install -y puppet)");
  const update = await run(ctx, machine, ["apt-get", "update", "-q"], { env });
  const updateErrors = update.text.split("\n").filter((line) => APT_ERROR.test(line));
  if (update.exitCode !== 0 || updateErrors.length > 0)
    throw new KilnError(
      "E_PROVISION",
      ctx.redact(`puppet: apt-get update failed on machine ${machine.id}:\n${indent(lastLines(updateErrors, update.text))}`),
      {
        hint: "check the machine's apt sources and network (apt-get update exits 0 even when fetches fail)",
      },
    );
  const install = await run(ctx, machine, ["apt-get", "install", "-y", "-q", "puppet"], { env });
  if (install.exitCode !== 0)
    throw new KilnError(
      "E_PROVISION",
      ctx.redact(`puppet: apt-get install -y puppet exited with code ${install.exitCode}:\n${indent(lastLines([], install.text))}`),
      { hint: "check that the machine's apt sources offer the puppet package (Debian 12: puppet 7)" },
    );
}

function lastLines(preferred: string[], text: string): string[] {
  if (preferred.length > 0) return preferred.slice(0, 10);
  return text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .slice(-10);
}

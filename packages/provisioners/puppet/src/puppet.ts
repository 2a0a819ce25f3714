import { createHash } from "node:crypto";
import { posix } from "node:path";
import { z } from "@kiln/core";
import {
  canonicalJson,
  defineProvisioner,
  KilnError,
  toKilnError,
  type BakeContext,
  type Machine,
  type StandardSchemaV1,
} from "@kiln/core";
import { hashTree } from "@kiln/core/kit";
import { findOrInstallPuppet } from "./install.js";
import { exitCodeMeaning, indent, puppetOutput } from "./output.js";
import { createStaging, hieraDataPlace, localInputs, localPath, removeStaging, stage } from "./staging.js";

export { hieraDataPlace } from "./staging.js";

/** Options of the `puppet` provisioner: masterless `puppet apply` on the build machine. Names follow Packer's puppet-masterless. */
export interface PuppetOptions {
  /** Manifest to apply: a `.pp` file, or a directory of them (Puppet applies them all), relative to the bake file's directory. */
  manifest_file: string;
  /** Local module directories (each holds modules, like Puppet's `modulepath` entries), staged and put on `--modulepath` in order. */
  module_paths?: string[] | undefined;
  /** Local `hiera.yaml` (Hiera 5), staged and passed as `--hiera_config`. Its `datadir` should be relative (e.g. `data`). */
  hiera_config_path?: string | undefined;
  /**
   * Local directory of Hiera data, inside the hiera config's directory (e.g. `puppet/data` next to `puppet/hiera.yaml`): it is
   * staged at the same place relative to the config, so a relative `datadir` in `hiera.yaml` finds it. Kiln's own option.
   */
  hiera_data_path?: string | undefined;
  /** Custom facts, name → value, given to Puppet as `FACTER_<name>` environment variables (never on a command line): secrets may go here. */
  facter?: Record<string, string> | undefined;
  /** More arguments for `puppet apply`, one argument per item (`["--environment", "production"]`). They are on the command line. */
  extra_arguments?: string[] | undefined;
  /** Directory on the machine holding `puppet`. Default: `puppet` on root's PATH, else `/opt/puppetlabs/bin`. */
  puppet_bin_dir?: string | undefined;
  /** Install the `puppet` package with apt-get first, when puppet is not on the machine yet (Debian and Ubuntu). Default false. */
  install?: boolean | undefined;
  /** Directory on the machine the files are staged in. Default: a fresh `mktemp -d /tmp/kiln-puppet-XXXXXX`. */
  staging_directory?: string | undefined;
  /** Directory on the machine `puppet apply` runs in. Default: the staging directory. */
  working_directory?: string | undefined;
  /** Remove what was staged after the run, whether it succeeded or failed, so it is not captured in the image. Default true. */
  clean_staging_directory?: boolean | undefined;
}

const FACT_NAME = /^[a-z][a-z0-9_]*$/;

const machinePath = (what: string) =>
  z
    .string()
    .min(1)
    .refine((path) => path.startsWith("/"), { message: `${what} must be an absolute path on the machine` })
    .refine((path) => !path.split("/").includes(".."), { message: `${what} must not contain ".."` });

const schema = z
  .strictObject({
    manifest_file: z
      .string()
      .min(1)
      .describe("Manifest to apply: a .pp file, or a directory of them (Puppet applies them all), relative to the bake file."),
    module_paths: z
      .array(z.string().min(1))
      .min(1)
      .optional()
      .describe("Local module directories (each holds modules, like modulepath entries), staged and put on --modulepath in order."),
    hiera_config_path: z
      .string()
      .min(1)
      .optional()
      .describe("Local hiera.yaml (Hiera 5), staged and passed as --hiera_config. Its datadir should be relative (e.g. data)."),
    hiera_data_path: z
      .string()
      .min(1)
      .optional()
      .describe(
        "Local directory of Hiera data inside the hiera config's directory, staged at the same place relative to it " +
          "(so a relative datadir finds it). Kiln's own option.",
      ),
    facter: z
      .record(z.string(), z.string())
      .superRefine((facts, issues) => {
        for (const name of Object.keys(facts).filter((key) => !FACT_NAME.test(key))) {
          issues.addIssue({
            code: "custom",
            path: [name],
            message: `"${name}" is not a fact name Facter keeps as written (lowercase letters, digits and _, starting with a letter)`,
          });
        }
      })
      .optional()
      .describe("Custom facts, name → value, given as FACTER_<name> environment variables (never on a command line): secrets may go here."),
    extra_arguments: z
      .array(z.string())
      .optional()
      .describe('More arguments for puppet apply, one per item (["--environment", "production"]). They are on the command line.'),
    puppet_bin_dir: machinePath("puppet_bin_dir")
      .optional()
      .describe("Directory on the machine holding puppet. Default: puppet on root's PATH, else /opt/puppetlabs/bin."),
    install: z
      .boolean()
      .optional()
      .describe("Install the puppet package with apt-get first when puppet is not on the machine (Debian and Ubuntu). Default false."),
    staging_directory: machinePath("staging_directory")
      .refine((path) => posix.normalize(path) !== "/", { message: "staging_directory cannot be / (it is removed after the run)" })
      .optional()
      .describe("Directory on the machine the files are staged in. Default: a fresh mktemp -d /tmp/kiln-puppet-XXXXXX."),
    working_directory: machinePath("working_directory")
      .optional()
      .describe("Directory on the machine puppet apply runs in. Default: the staging directory."),
    clean_staging_directory: z
      .boolean()
      .optional()
      .describe("Remove what was staged after the run, on success and on failure, so it is not captured in the image. Default true."),
  })
  .superRefine((opts, issues) => {
    if (opts.hiera_data_path === undefined) return;
    if (opts.hiera_config_path === undefined) {
      issues.addIssue({
        code: "custom",
        path: ["hiera_data_path"],
        message: "hiera_data_path needs hiera_config_path (the hiera.yaml that reads it)",
      });
    } else if (hieraDataPlace(opts.hiera_config_path, opts.hiera_data_path) === undefined) {
      issues.addIssue({
        code: "custom",
        path: ["hiera_data_path"],
        message: `hiera_data_path must be a directory inside ${posix.dirname(opts.hiera_config_path)}, the hiera config's directory (its datadir is relative to it)`,
      });
    }
  });

export const puppet = defineProvisioner<PuppetOptions>(() => ({
  name: "puppet",
  schema: schema satisfies StandardSchemaV1<unknown, PuppetOptions>,
  // These reach the `puppet apply` command line, which every process on the machine can read; facts travel in the environment.
  exposedOptions: [
    { path: ["extra_arguments"], where: "the puppet apply command line on the machine (ps shows it)" },
    { path: ["puppet_bin_dir"], where: "the puppet apply command line on the machine (ps shows it)" },
    { path: ["staging_directory"], where: "the puppet apply command line on the machine (ps shows it)" },
    { path: ["working_directory"], where: "the machine's process list (ps shows it)" },
  ],
  hostPaths: (opts) => localInputs(opts).map(({ option, value }) => ({ path: option, value, access: "read" as const })),

  async fingerprint(ctx, opts) {
    const hash = createHash("sha256").update(canonicalJson(opts));
    const roots = await Promise.all(localInputs(opts).map((input) => localPath(ctx, input)));
    // The staged tree: contents, names and executable bits, not where the project is checked out (.git and editor files left out).
    hash.update(await hashTree(roots));
    return hash.digest("hex");
  },

  async run(ctx, machine, opts) {
    const puppetPath = await findOrInstallPuppet(ctx, machine, opts);
    const staging = await createStaging(ctx, machine, opts.staging_directory);
    let failure: { error: unknown } | undefined;
    try {
      const { manifest, modulePath, hieraConfig } = await stage(ctx, machine, opts, staging.path);
      await apply(ctx, machine, opts, puppetPath, staging.path, [
        ...(modulePath ? [`--modulepath=${modulePath}`] : []),
        ...(hieraConfig ? [`--hiera_config=${hieraConfig}`] : []),
        ...(opts.extra_arguments ?? []),
        manifest,
      ]);
    } catch (error) {
      failure = { error };
    }
    // Removed before capture on success and on failure; a failed removal never hides the step's own error.
    if (opts.clean_staging_directory !== false && !ctx.signal.aborted) {
      const removal = await removeStaging(machine, staging);
      if (removal !== undefined && failure === undefined) throw removal;
      if (removal !== undefined) ctx.log.warn(removal.message);
    }
    if (failure) throw failure.error;
  },
}));

/** `puppet apply --detailed-exitcodes`: 0 and 2 are success, anything else fails the step with what Puppet reported. */
async function apply(ctx: BakeContext, machine: Machine, opts: PuppetOptions, puppetPath: string, staging: string, args: string[]) {
  const facts = Object.fromEntries(Object.entries(opts.facter ?? {}).map(([name, value]) => [`FACTER_${name}`, value]));
  const output = puppetOutput((stream, line) => ctx.output(stream, line));
  const argv = [puppetPath, "apply", "--detailed-exitcodes", "--color=false", ...args];
  const result = await machine
    .exec(argv, {
      user: "root",
      env: { FACTER_kiln_image: ctx.image, ...facts },
      cwd: opts.working_directory ?? staging,
      signal: ctx.signal,
      onOutput: (stream, chunk) => output.add(stream, chunk),
    })
    .catch((error: unknown) => {
      throw ctx.signal.aborted ? error : toKilnError(error, "E_PROVISION", `puppet: puppet apply could not run on machine ${machine.id}`);
    })
    .finally(() => output.flush());
  if (result.exitCode === 0 || result.exitCode === 2) return;

  const sections = [`puppet: puppet apply ${opts.manifest_file} exited with code ${result.exitCode} (${exitCodeMeaning(result.exitCode)})`];
  const failed = output.failedResources();
  const skipped = output.skippedResources();
  const errors = output.errors();
  if (failed.length > 0) sections.push(`failed resources:\n${indent(failed)}`);
  if (skipped.length > 0) sections.push(`skipped because of failed dependencies:\n${indent(skipped)}`);
  if (errors.length > 0) sections.push(`errors:\n${indent(errors)}`);
  const tail = output.tail().filter((line) => !errors.includes(line));
  if (tail.length > 0) sections.push(`last output:\n${indent(tail)}`);
  throw new KilnError("E_PROVISION", ctx.redact(sections.join("\n")), {
    hint:
      result.exitCode === 1
        ? "fix the manifest (Puppet changed nothing); add extra_arguments: [--debug] for more detail"
        : result.exitCode === 4 || result.exitCode === 6
          ? "fix the failed resources; add extra_arguments: [--debug] for more detail"
          : "check puppet_bin_dir and extra_arguments",
  });
}

import { createHash } from "node:crypto";
import { stat } from "node:fs/promises";
import { posix } from "node:path";
import { Readable } from "node:stream";
import { z } from "@kiln/core";
import {
  canonicalJson,
  defineProvisioner,
  KilnError,
  toKilnError,
  type BakeContext,
  type HostPath,
  type Machine,
  type StandardSchemaV1,
} from "@kiln/core";
import { hashTree, readHostFile } from "@kiln/core/kit";
import { nodeJson, soloRb, type StagedLayout } from "./config.js";
import { outputLines } from "./output.js";

/** Options of the `chef` provisioner, named as in Packer's `chef-solo` provisioner where it has them. */
export interface ChefOptions {
  /** Local directories of cookbooks (each holds `<cookbook>/recipes/…`), relative to the bake file's directory. */
  cookbook_paths: string[];
  /** Local directory of roles (`<role>.json` or `.rb`). */
  roles_path?: string | undefined;
  /** Local directory of environments (`<environment>.json` or `.rb`). */
  environments_path?: string | undefined;
  /** Local directory of data bags (`<bag>/<item>.json`). */
  data_bags_path?: string | undefined;
  /** What Chef runs, in order: `recipe[cookbook]`, `recipe[cookbook::recipe]`, `role[name]`. */
  run_list: string[];
  /** Node attributes, written to the node JSON given to `chef-solo -j`. Values may be secrets: they are never logged. */
  json?: Record<string, unknown> | undefined;
  /** The node's environment, one of `environments_path`. */
  chef_environment?: string | undefined;
  /**
   * Local file with the secret of encrypted data bags. Uploaded as a root-owned 0600 file, hidden in the output, and removed
   * before the image is captured, whether the step succeeds or fails. Its content is not part of the bake key.
   */
  encrypted_data_bag_secret_path?: string | undefined;
  /**
   * Installs the client when neither `cinc-solo` nor `chef-solo` is on the machine; runs as root through `/bin/sh -e`, e.g.
   * `curl -L https://omnitruck.cinc.sh/install.sh | bash`. Not set: nothing is installed.
   */
  install_command?: string | undefined;
  /** Never run `install_command`: the source image must have the client. Default false. */
  skip_install?: boolean | undefined;
  /** Absolute directory on the machine to stage into; must be new or empty. Default: a fresh `mktemp -d /tmp/kiln-chef-XXXXXX`. */
  staging_directory?: string | undefined;
  /**
   * Remove the staging directory before capture (on success and failure). Default true. With false, the staged cookbooks,
   * roles, `solo.rb` and Chef's cache stay in the image; the secret, `node.json` and the saved node are removed anyway.
   */
  clean_staging_directory?: boolean | undefined;
  /** Accepts Chef's license (passed as `CHEF_LICENSE`); needed by Chef Infra 15 and later, not by Cinc. */
  chef_license?: "accept" | "accept-silent" | "accept-no-persist" | undefined;
  /** Extra arguments for `chef-solo`, after Kiln's own (e.g. `["-l", "debug"]`). They appear on the machine's command line. */
  extra_arguments?: string[] | undefined;
}

const RUN_LIST_ENTRY = /^(recipe\[[\w.-]+(::[\w.-]+)?(@\d+(\.\d+){0,2})?\]|role\[[\w.-]+\])$/;
const ENVIRONMENT_NAME = /^[A-Za-z0-9_-]+$/;
const localPath = z.string().min(1);

const schema = z
  .strictObject({
    cookbook_paths: z
      .array(localPath)
      .min(1)
      .describe("Local directories of cookbooks (each holds <cookbook>/recipes/…), relative to the bake file, uploaded in order."),
    roles_path: localPath.optional().describe("Local directory of roles (<role>.json or .rb)."),
    environments_path: localPath.optional().describe("Local directory of environments (<environment>.json or .rb)."),
    data_bags_path: localPath.optional().describe("Local directory of data bags (<bag>/<item>.json)."),
    run_list: z
      .array(
        z.string().regex(RUN_LIST_ENTRY, {
          error: (issue) =>
            `${JSON.stringify(issue.input)} is not a run_list entry: write recipe[cookbook], recipe[cookbook::recipe] or role[name]`,
        }),
      )
      .min(1, "run_list needs at least one recipe[…] or role[…]")
      .describe("What Chef runs, in order: recipe[cookbook], recipe[cookbook::recipe], recipe[cookbook::recipe@1.2.3], role[name]."),
    json: z
      .record(z.string(), z.unknown())
      .refine((json) => !("run_list" in json || "chef_environment" in json), {
        message: "set run_list and chef_environment with their own options, not inside json",
      })
      .optional()
      .describe("Node attributes, written to the node JSON given to chef-solo -j. Values may be secrets: they are never logged."),
    chef_environment: z
      .string()
      .regex(ENVIRONMENT_NAME, "an environment name has only letters, digits, _ and -")
      .optional()
      .describe("The node's environment, one of environments_path."),
    encrypted_data_bag_secret_path: localPath
      .optional()
      .describe(
        "Local file with the secret of encrypted data bags: uploaded root-owned 0600, hidden in the output, removed before capture. " +
          "Not part of the bake key.",
      ),
    install_command: z
      .string()
      .min(1)
      .optional()
      .describe(
        "Installs the client when neither cinc-solo nor chef-solo is on the machine, as root through /bin/sh -e " +
          "(e.g. curl -L https://omnitruck.cinc.sh/install.sh | bash). Not set: nothing is installed.",
      ),
    skip_install: z.boolean().optional().describe("Never run install_command: the source image must have the client. Default false."),
    staging_directory: z
      .string()
      .regex(/^\/./, "staging_directory must be an absolute path on the machine, other than /")
      .refine((path) => !path.split("/").includes(".."), "staging_directory must not contain ..")
      .optional()
      .describe("Absolute directory on the machine to stage into; must be new or empty. Default: a fresh mktemp -d /tmp/kiln-chef-XXXXXX."),
    clean_staging_directory: z
      .boolean()
      .optional()
      .describe(
        "Remove the staging directory before capture, on success and failure. Default true. " +
          "The secret, node.json and the saved node are removed anyway.",
      ),
    chef_license: z
      .enum(["accept", "accept-silent", "accept-no-persist"])
      .optional()
      .describe("Accepts Chef's license (passed as CHEF_LICENSE); Chef Infra 15 and later need it, Cinc does not."),
    extra_arguments: z
      .array(z.string())
      .optional()
      .describe('More arguments for chef-solo, after Kiln\'s own (e.g. ["-l", "debug"]). They are on the machine\'s command line.'),
  })
  .superRefine((opts, issues) => {
    if (opts.chef_environment !== undefined && opts.chef_environment !== "_default" && opts.environments_path === undefined)
      issues.addIssue({ code: "custom", path: ["chef_environment"], message: "chef_environment needs environments_path" });
    if (opts.skip_install && opts.install_command !== undefined)
      issues.addIssue({ code: "custom", path: ["skip_install"], message: "skip_install: true never runs install_command: remove one" });
  });

/** Where the client is looked for, in order: Cinc first, on the PATH (root's, through sudo) and where the installers put it. */
const CLIENTS = ["cinc-solo", "/opt/cinc/bin/cinc-solo", "chef-solo", "/opt/chef/bin/chef-solo"];
const FIND_CLIENT = `for c in ${CLIENTS.join(" ")}; do if p=$(command -v "$c"); then echo "$p"; exit 0; fi; done; exit 1`;
const INSTALL_HINT =
  'set install_command, e.g. "curl -L https://omnitruck.cinc.sh/install.sh | bash" (Cinc) or ' +
  '"curl -L https://omnitruck.chef.io/install.sh | bash -s -- -v 18" (Chef, with chef_license: accept)';
/** A data bag secret is a short key; a larger "secret" (or /dev/zero) is a mistake. */
const MAX_SECRET_BYTES = 64 * 1024;
/** Cleanup must not hang the bake on a machine that stopped answering. */
const CLEANUP_TIMEOUT_MS = 60_000;

/** A local directory staged on the machine. */
interface Tree {
  /** The option it comes from, for messages: `cookbook_paths[1]`. */
  option: string;
  /** As written in the bake file. */
  value: string;
  /** Its name inside the staging directory. */
  staged: string;
}

export const chef = defineProvisioner<ChefOptions>(() => ({
  name: "chef",
  schema: schema satisfies StandardSchemaV1<unknown, ChefOptions>,
  // Arguments are visible to every process on the machine (ps shows them); attributes and the secret go in files.
  exposedOptions: [{ path: ["extra_arguments"], where: "the chef-solo command line on the machine (ps shows it)" }],
  hostPaths: (opts) => [
    ...treesOf(opts).map((tree): HostPath => ({ path: optionPath(tree.option), value: tree.value, access: "read" })),
    ...(opts.encrypted_data_bag_secret_path === undefined
      ? []
      : [{ path: ["encrypted_data_bag_secret_path"], value: opts.encrypted_data_bag_secret_path, access: "read" as const }]),
  ],

  async fingerprint(ctx, opts) {
    // The secret only decrypts data bags, whose content is hashed: a rotated secret (same bags) does not rebake. Only whether
    // one is set counts (it changes solo.rb). Sensitive values in the options are left to the bake key, which hides them.
    const { encrypted_data_bag_secret_path: secret, ...rest } = opts;
    const hash = createHash("sha256").update(ctx.redact(canonicalJson({ ...rest, encrypted_data_bag_secret: secret !== undefined })));
    const trees = treesOf(opts);
    // Paths as written (in the options above), content by tree: the key is the same wherever the project is checked out.
    hash.update(await hashTree(await Promise.all(trees.map((tree) => localTree(ctx, tree)))));
    if (secret !== undefined) await readSecret(ctx, secret); // only checks it is there, so a typo fails before the bake
    return hash.digest("hex");
  },

  async run(ctx, machine, opts) {
    const trees = treesOf(opts);
    const locals = await Promise.all(trees.map((tree) => localTree(ctx, tree)));
    const secret =
      opts.encrypted_data_bag_secret_path === undefined ? undefined : await readSecret(ctx, opts.encrypted_data_bag_secret_path);
    const hidden = secret === undefined ? [] : secretLines(secret);
    const staging = await createStaging(ctx, machine, opts.staging_directory);
    const at = (name: string) => posix.join(staging, name);
    const secretPath = secret === undefined ? undefined : at("encrypted_data_bag_secret");

    let failure: { error: unknown } | undefined;
    try {
      const client = await ensureClient(ctx, machine, opts, staging, hidden);
      for (const [index, tree] of trees.entries()) await machine.upload(locals[index] as string, at(tree.staged));
      if (secretPath !== undefined) await machine.upload(Readable.from([secret as Buffer]), secretPath, { mode: 0o600 });
      const layout: StagedLayout = {
        staging,
        cookbookPaths: trees.filter((tree) => tree.option.startsWith("cookbook_paths")).map((tree) => at(tree.staged)),
        rolePath: opts.roles_path === undefined ? undefined : at("roles"),
        environmentPath: opts.environments_path === undefined ? undefined : at("environments"),
        dataBagPath: opts.data_bags_path === undefined ? undefined : at("data_bags"),
        secretPath,
        environment: opts.chef_environment,
      };
      await machine.upload(Readable.from([Buffer.from(soloRb(layout))]), at("solo.rb"), { mode: 0o600 });
      await machine.upload(Readable.from([Buffer.from(nodeJson(opts.run_list, opts.json, opts.chef_environment))]), at("node.json"), {
        mode: 0o600,
      });
      // Uploads land owned by whoever the transfer ran as: make everything root's, and the secret root's alone.
      await rootCommand(ctx, machine, ["chown", "-R", "0:0", staging], "take ownership of the staging directory");
      await runChef(ctx, machine, client, opts, staging, hidden);
    } catch (error) {
      failure = { error };
    }
    // Before capture, whatever happened: the image must not keep the secret, and a failed removal must not hide the step's error.
    const removal = await removeStaging(machine, staging, opts.clean_staging_directory ?? true);
    if (failure) {
      if (removal) ctx.log.warn(ctx.redact(removal.message));
      throw failure.error;
    }
    if (removal) throw removal;
  },
}));

/** The local directories to stage, each with its place in the staging directory. */
function treesOf(opts: ChefOptions): Tree[] {
  const single = (option: keyof ChefOptions, staged: string): Tree[] => {
    const value = opts[option];
    return typeof value === "string" ? [{ option, value, staged }] : [];
  };
  return [
    ...opts.cookbook_paths.map((value, index) => ({ option: `cookbook_paths[${index}]`, value, staged: `cookbooks-${index}` })),
    ...single("roles_path", "roles"),
    ...single("environments_path", "environments"),
    ...single("data_bags_path", "data_bags"),
  ];
}

/** `cookbook_paths[1]` → `["cookbook_paths", 1]`. */
function optionPath(option: string): (string | number)[] {
  const match = /^(\w+)\[(\d+)\]$/.exec(option);
  return match ? [match[1] as string, Number(match[2])] : [option];
}

/** The real local path of a tree, checked to be a directory inside the project (or an allowed place). */
async function localTree(ctx: BakeContext, tree: Tree): Promise<string> {
  const local = await ctx.hostPath(tree.value, "read");
  const info = await stat(local).catch((error: unknown) => {
    throw new KilnError("E_CONFIG", `chef: ${tree.option} ${tree.value} not found (looked at ${local})`, {
      hint: "paths are relative to the bake file's directory; check the name or create the directory",
      cause: error,
    });
  });
  if (!info.isDirectory()) throw new KilnError("E_CONFIG", `chef: ${tree.option} ${tree.value} is not a directory`);
  return local;
}

async function readSecret(ctx: BakeContext, path: string): Promise<Buffer> {
  const content = await readHostFile(ctx, path, {
    what: "chef: encrypted_data_bag_secret_path",
    maxBytes: MAX_SECRET_BYTES,
    hint: "the path is relative to the bake file's directory; keep the secret out of version control, e.g. written by CI",
  });
  if (content.toString("utf8").trim() === "") throw new KilnError("E_CONFIG", `chef: encrypted_data_bag_secret_path ${path} is empty`);
  return content;
}

/**
 * What of the secret to hide in output: the whole of it (Chef strips surrounding whitespace) and each line of a wrapped
 * one (`openssl rand -base64 512` writes 64-column lines), longest first; lines too short to be telling are left alone.
 */
export function secretLines(secret: Buffer): string[] {
  const text = secret.toString("utf8").trim();
  const parts = [text, ...text.split(/\r?\n/).map((line) => line.trim())].filter((part) => part.length >= 8);
  return [...new Set(parts)].sort((a, b) => b.length - a.length);
}

/** A fresh staging directory (0700, root's), or `staging_directory` created — refused if it already holds something. */
async function createStaging(ctx: BakeContext, machine: Machine, wanted: string | undefined): Promise<string> {
  if (wanted === undefined)
    return (await rootCommand(ctx, machine, ["mktemp", "-d", "/tmp/kiln-chef-XXXXXX"], "create a staging directory")).trim();
  const script = 'if [ -n "$(ls -A "$1" 2>/dev/null)" ]; then exit 3; fi; mkdir -p "$1" && chmod 0700 "$1"';
  const result = await machine.exec(["/bin/sh", "-c", script, "sh", wanted], { user: "root", signal: ctx.signal });
  if (result.exitCode === 3)
    throw new KilnError("E_PROVISION", `chef: staging_directory ${wanted} already exists on machine ${machine.id} and is not empty`, {
      hint: "Kiln removes the staging directory afterwards, so it must be new or empty: name another, or leave staging_directory unset",
    });
  if (result.exitCode !== 0)
    throw new KilnError("E_PROVISION", `chef: cannot create staging_directory ${wanted} on machine ${machine.id}: ${result.stderr.trim()}`);
  return wanted.replace(/\/+$/, "");
}

/** Runs a small command of Kiln's own as root; a failure is E_PROVISION with what it was for. */
async function rootCommand(ctx: BakeContext, machine: Machine, argv: string[], purpose: string): Promise<string> {
  const result = await machine.exec(argv, { user: "root", signal: ctx.signal });
  if (result.exitCode !== 0)
    throw new KilnError(
      "E_PROVISION",
      `chef: cannot ${purpose} on machine ${machine.id} (exit code ${result.exitCode}): ${result.stderr.trim()}`,
    );
  return result.stdout;
}

async function findClient(ctx: BakeContext, machine: Machine): Promise<string | undefined> {
  const result = await machine.exec(FIND_CLIENT, { user: "root", signal: ctx.signal });
  return result.exitCode === 0 ? result.stdout.trim() || undefined : undefined;
}

/** The client to run: `cinc-solo` if present, else `chef-solo`; `install_command` runs when there is neither. */
async function ensureClient(ctx: BakeContext, machine: Machine, opts: ChefOptions, staging: string, hidden: string[]): Promise<string> {
  const found = await findClient(ctx, machine);
  if (found !== undefined) {
    if (opts.install_command !== undefined) ctx.log.info(`chef: ${found} is already on the machine; install_command not run`);
    return found;
  }
  if (opts.install_command === undefined)
    throw new KilnError("E_PROVISION", `chef: neither cinc-solo nor chef-solo is installed on machine ${machine.id}`, {
      hint: opts.skip_install
        ? `skip_install is set: start from an image that has Chef or Cinc, or unset it and ${INSTALL_HINT}`
        : INSTALL_HINT,
    });
  const script = posix.join(staging, "install.sh");
  await machine.upload(Readable.from([Buffer.from(`${opts.install_command}\n`)]), script, { mode: 0o700 });
  // Removed by the same exec that runs it: the command may hold a token, and clean_staging_directory may be false.
  const command = ["/bin/sh", "-c", '/bin/sh -e "$1"; status=$?; rm -f "$1"; exit $status', "sh", script];
  await streamed(ctx, machine, command, {}, hidden, "install_command");
  const installed = await findClient(ctx, machine);
  if (installed === undefined)
    throw new KilnError("E_PROVISION", `chef: install_command ran, but neither cinc-solo nor chef-solo is on machine ${machine.id}`, {
      hint: `Kiln looks for ${CLIENTS.join(", ")} (as root); make install_command put the client there`,
    });
  return installed;
}

async function runChef(ctx: BakeContext, machine: Machine, client: string, opts: ChefOptions, staging: string, hidden: string[]) {
  const argv = [client, ...chefArguments(staging, opts.extra_arguments)];
  const env = opts.chef_license === undefined ? {} : { CHEF_LICENSE: opts.chef_license };
  await streamed(ctx, machine, argv, env, hidden, `${posix.basename(client)} (run_list ${opts.run_list.join(", ")})`);
}

/** `--no-color -c <staging>/solo.rb -j <staging>/node.json`, then `extra_arguments`. */
export function chefArguments(staging: string, extra: readonly string[] = []): string[] {
  return ["--no-color", "-c", posix.join(staging, "solo.rb"), "-j", posix.join(staging, "node.json"), ...extra];
}

/** Runs `argv` as root with its output streamed line by line; a non-zero exit is E_PROVISION with the last lines. */
async function streamed(ctx: BakeContext, machine: Machine, argv: string[], env: Record<string, string>, hidden: string[], label: string) {
  const lines = outputLines((stream, line) => ctx.output(stream, line), hidden);
  const outcome = await machine
    .exec(argv, { user: "root", ...(Object.keys(env).length > 0 ? { env } : {}), signal: ctx.signal, onOutput: lines.add })
    .catch((error: unknown) => ({ error }));
  lines.flush();
  if ("error" in outcome)
    throw ctx.signal.aborted ? outcome.error : toKilnError(outcome.error, "E_PROVISION", `chef: ${label} could not run`);
  if (outcome.exitCode === 0) return;
  const tail = lines.tail().map((line) => `  ${ctx.redact(line)}`);
  const message = `chef: ${label} exited with code ${outcome.exitCode}${tail.length ? `\nlast output:\n${tail.join("\n")}` : ""}`;
  throw new KilnError("E_PROVISION", ctx.redact(message), {
    hint:
      label === "install_command"
        ? "fix install_command, or start from an image that has the client"
        : "Chef's FATAL and ERROR lines say why",
  });
}

/**
 * Removes the staging directory, or with `clean` false the files that hold secrets and attribute values (the data bag
 * secret, node.json, the node Chef saved). Returns the error instead of throwing, so the caller decides which error wins.
 */
async function removeStaging(machine: Machine, staging: string, clean: boolean): Promise<KilnError | undefined> {
  const targets = clean
    ? [staging]
    : ["encrypted_data_bag_secret", "node.json", "nodes", "install.sh"].map((name) => posix.join(staging, name));
  try {
    // No abort signal: this must run even when the step was interrupted or timed out.
    const result = await machine.exec(["rm", "-rf", "--", ...targets], { user: "root", timeout: CLEANUP_TIMEOUT_MS });
    if (result.exitCode === 0) return undefined;
    return new KilnError(
      "E_PROVISION",
      `chef: cannot remove ${targets.join(", ")} from machine ${machine.id} before capture: ${result.stderr.trim()}`,
    );
  } catch (error) {
    return toKilnError(error, "E_PROVISION", `chef: cannot remove ${targets.join(", ")} from machine ${machine.id} before capture`);
  }
}

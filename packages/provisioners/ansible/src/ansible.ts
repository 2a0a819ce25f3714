import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { Readable } from "node:stream";
import { z } from "@kiln/core";
import { type BakeContext, canonicalJson, defineProvisioner, KilnError, type Machine, type StandardSchemaV1 } from "@kiln/core";
import { hashTree, missingTools } from "@kiln/core/kit";
import { readRequirements } from "./galaxy.js";
import { inventoryDocument, writeInventory } from "./inventory.js";
import { runProcess } from "./process.js";
import { playbookReport, summarize } from "./report.js";

/** Options of the `ansible` provisioner; names follow Packer's `ansible` and `ansible-local` provisioners. */
export interface AnsibleOptions {
  /** The playbook, relative to the bake file. Its directory (roles/, group_vars/, templates, vars files) feeds the bake key. */
  playbook_file: string;
  /**
   * `remote` (default): `ansible-playbook` runs on this host and reaches the machine over the driver's own channel.
   * `local`: the playbook directory is staged into the machine and run there with `-c local` (the image needs Ansible).
   */
  mode?: "remote" | "local" | undefined;
  /** The `ansible-playbook` executable. */
  command?: string | undefined;
  /** More arguments for `ansible-playbook` (shown by `ps`: no secrets; use extra_vars). */
  extra_arguments?: string[] | undefined;
  /** Variables for the playbook, passed in a 0600 file (`-e @file`): values may be secrets. */
  extra_vars?: Record<string, unknown> | undefined;
  /** Inventory groups the machine is in. */
  groups?: string[] | undefined;
  /** The machine's name in the inventory. Default `default`, as Packer's. */
  host_alias?: string | undefined;
  /** Variables set on the machine's groups in the inventory. */
  inventory_group_vars?: Record<string, unknown> | undefined;
  /** Directories of roles besides the playbook's own `roles/`. */
  roles_path?: string | string[] | undefined;
  /** A requirements file; its roles and collections are installed from local paths or tarballs before the run. */
  galaxy_file?: string | undefined;
  /** An ansible.cfg to use (`ANSIBLE_CONFIG`). */
  ansible_cfg?: string | undefined;
  /** Environment for `ansible-playbook`: `{ ANSIBLE_FORKS: "1" }` or Packer's `["ANSIBLE_FORKS=1"]`. */
  ansible_env_vars?: Record<string, string> | string[] | undefined;
  /** Run tasks as `become_user` (`--become`). Default: when the machine's login user is not root (as every provisioner does). */
  become?: boolean | undefined;
  become_user?: string | undefined;
  /** `--check`: report what would change without changing it. */
  check?: boolean | undefined;
  tags?: string[] | undefined;
  skip_tags?: string[] | undefined;
  /** Install python3 on the machine first when it has none (Ansible's modules need it). */
  install_python?: boolean | undefined;
}

const stringList = z.array(z.string().min(1));
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const variableMap = z.record(z.string().regex(NAME, "not a variable name (letters, digits and _)"), z.unknown());

const schema = z.strictObject({
  playbook_file: z
    .string()
    .min(1)
    .describe("The playbook, relative to the bake file. Its directory (roles/, group_vars/, templates, vars files) feeds the bake key."),
  mode: z
    .enum(["remote", "local"])
    .optional()
    .describe(
      '"remote" (default): ansible-playbook runs on this host and reaches the machine over the driver\'s channel. ' +
        '"local": the playbook directory is staged into the machine and run there with -c local (the image needs Ansible).',
    ),
  command: z.string().min(1).optional().describe('The ansible-playbook executable. Default "ansible-playbook".'),
  extra_arguments: stringList.optional().describe("More arguments for ansible-playbook; ps shows them, so no secrets (use extra_vars)."),
  extra_vars: variableMap
    .optional()
    .describe("Variables for the playbook, passed in a 0600 file (-e @file): values may be secrets. kiln_image and kiln_run_id are set."),
  groups: z
    .array(z.string().regex(/^[A-Za-z_][\w-]*$/, "not an inventory group name"))
    .optional()
    .describe("Inventory groups the machine is in."),
  host_alias: z
    .string()
    .regex(/^[A-Za-z0-9_][\w.-]*$/, "letters, digits, '.', '-' and '_'")
    .optional()
    .describe("The machine's name in the inventory. Default \"default\", as Packer's."),
  inventory_group_vars: variableMap.optional().describe("Variables set on the machine's groups in the generated inventory."),
  roles_path: z
    .union([z.string().min(1), stringList.min(1)])
    .optional()
    .describe("Directories of roles besides the playbook's own roles/, relative to the bake file."),
  galaxy_file: z
    .string()
    .min(1)
    .optional()
    .describe("A requirements file; its roles and collections are installed with ansible-galaxy (from local paths or tarballs) first."),
  ansible_cfg: z.string().min(1).optional().describe("An ansible.cfg to use (ANSIBLE_CONFIG), relative to the bake file."),
  ansible_env_vars: z
    .union([
      z.record(z.string().regex(NAME, "not an environment variable name"), z.string()),
      z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*=/, "write NAME=value")),
    ])
    .optional()
    .describe('Environment for ansible-playbook: { ANSIBLE_FORKS: "1" } or Packer\'s ["ANSIBLE_FORKS=1"].'),
  become: z.boolean().optional().describe("Run tasks as become_user (--become). Default: when the machine's login user is not root."),
  become_user: z.string().min(1).optional().describe('User the tasks become (--become-user). Default "root".'),
  check: z.boolean().optional().describe("--check: report what would change without changing it."),
  tags: stringList.optional().describe("Run only tasks with these tags (--tags)."),
  skip_tags: stringList.optional().describe("Skip tasks with these tags (--skip-tags)."),
  install_python: z
    .boolean()
    .optional()
    .describe("Install python3 on the machine first (apt, apk or dnf) when it has none: Ansible's modules need it."),
}) satisfies StandardSchemaV1<unknown, AnsibleOptions>;

export const ansible = defineProvisioner<AnsibleOptions>(() => ({
  name: "ansible",
  schema,
  exposedOptions: [{ path: ["extra_arguments"], where: "the ansible-playbook command line (ps shows it)" }],
  hostPaths: (opts) => [
    { path: ["playbook_file"], value: opts.playbook_file, access: "read" },
    ...rolesPaths(opts).map((value, index) => ({
      path: typeof opts.roles_path === "string" ? ["roles_path"] : ["roles_path", index],
      value,
      access: "read" as const,
    })),
    ...(opts.galaxy_file ? [{ path: ["galaxy_file"], value: opts.galaxy_file, access: "read" as const }] : []),
    ...(opts.ansible_cfg ? [{ path: ["ansible_cfg"], value: opts.ansible_cfg, access: "read" as const }] : []),
  ],

  async preflight(opts, target) {
    if (opts.mode === "local") return [];
    const tools = [{ command: opts.command ?? "ansible-playbook", install: "apt-get install -y ansible" }];
    if (target.connectionKinds?.includes("docker")) tools.push({ command: "docker", install: "apt-get install -y docker.io" });
    return (await missingTools(tools)).map((problem) => ({ ...problem, path: opts.command ? ["command"] : [] }));
  },

  async fingerprint(ctx, opts) {
    const hash = createHash("sha256").update(canonicalJson(opts));
    const playbook = await ctx.hostPath(opts.playbook_file);
    // The playbook's whole directory (the playbook among it): roles/, group_vars/, templates and vars files change what it does.
    hash.update(await hashTree(dirname(playbook)));
    for (const path of rolesPaths(opts)) hash.update(await hashTree(await ctx.hostPath(path)));
    if (opts.ansible_cfg) hash.update(await hashTree(await ctx.hostPath(opts.ansible_cfg)));
    if (opts.galaxy_file) {
      const file = await ctx.hostPath(opts.galaxy_file);
      hash.update(await hashTree(file));
      for (const source of (await readRequirements(ctx, file)).localSources) hash.update(await hashTree(source));
    }
    return hash.digest("hex");
  },

  async run(ctx, machine, opts) {
    // Host files for this run (inventory, SSH key, extra vars) live in a private directory, removed when the bake ends —
    // kept, with the machine, by --on-error=abort, so the playbook can be run again by hand.
    const workDir = await mkdtemp(join(tmpdir(), "kiln-ansible-"));
    ctx.defer(() => rm(workDir, { recursive: true, force: true }), {
      resource: `Ansible inventory directory ${workDir}`,
      manualCommand: `rm -rf ${workDir}`,
    });
    const probe = await probeMachine(ctx, machine, opts);
    if (opts.mode === "local") await runLocal(ctx, machine, opts, workDir);
    else await runRemote(ctx, machine, opts, workDir, probe.hasSudo);
  },
}));

async function hostRolesPaths(ctx: BakeContext, opts: AnsibleOptions): Promise<string[]> {
  return Promise.all(rolesPaths(opts).map((path) => ctx.hostPath(path)));
}

/** Uploads each directory to `<prefix>-<n>` on the machine; returns where they landed. */
async function stageAll(machine: Machine, dirs: readonly string[], prefix: string): Promise<string[]> {
  const staged: string[] = [];
  for (const [index, dir] of dirs.entries()) {
    await machine.upload(dir, `${prefix}-${index}`);
    staged.push(`${prefix}-${index}`);
  }
  return staged;
}

function rolesPaths(opts: AnsibleOptions): string[] {
  return typeof opts.roles_path === "string" ? [opts.roles_path] : (opts.roles_path ?? []);
}

/** What the machine has that the run depends on: python3 for Ansible's modules, sudo for `become`. */
async function probeMachine(ctx: BakeContext, machine: Machine, opts: AnsibleOptions): Promise<{ hasSudo: boolean }> {
  const script = [
    "command -v sudo >/dev/null 2>&1 && echo sudo",
    "command -v python3 >/dev/null 2>&1 || command -v python >/dev/null 2>&1 || test -x /usr/libexec/platform-python && echo python",
    "command -v ansible-playbook >/dev/null 2>&1 && echo ansible-playbook",
  ].join("; ");
  const found = (await machine.exec(script, { user: "root", signal: ctx.signal })).stdout.split("\n");
  if (!found.includes("python")) {
    if (!opts.install_python)
      throw new KilnError("E_PROVISION", "ansible: the machine has no python3, which Ansible's modules need", {
        hint: "set install_python: true on the ansible step to install it first, or start from an image that has python3",
      });
    await installPython(ctx, machine);
  }
  if (opts.mode === "local" && !found.includes("ansible-playbook"))
    throw new KilnError("E_PROVISION", "ansible: mode: local runs ansible-playbook on the machine, and the machine has none", {
      hint: "install it in an earlier step (shell: { inline: [apt-get install -y ansible-core] }), or use the default mode: remote",
    });
  return { hasSudo: found.includes("sudo") };
}

/** apt, apk or dnf, whichever the image has. `apt-get update` exits 0 even when every fetch fails, so its output is checked. */
const INSTALL_PYTHON = `set -e
if command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  out=$(apt-get update 2>&1) || { echo "$out"; exit 1; }
  echo "$out"
  if echo "$out" | grep -Eq '^(E|Err):'; then echo "apt-get update failed" >&2; exit 1; fi
  apt-get install -y --no-install-recommends python3
elif command -v apk >/dev/null 2>&1; then apk add --no-cache python3
elif command -v dnf >/dev/null 2>&1; then dnf install -y python3
else echo "no apt-get, apk or dnf on the machine" >&2; exit 1
fi`;

async function installPython(ctx: BakeContext, machine: Machine): Promise<void> {
  ctx.log.info("ansible: installing python3 on the machine (install_python)");
  const result = await machine.exec(INSTALL_PYTHON, { user: "root", signal: ctx.signal, onOutput: ctx.output });
  if (result.exitCode !== 0)
    throw new KilnError(
      "E_PROVISION",
      ctx.redact(`ansible: installing python3 failed (exit ${result.exitCode}): ${lastLines(result.stderr)}`),
    );
}

/** `ansible-playbook` on this host, reaching the machine through its connection descriptor. */
async function runRemote(ctx: BakeContext, machine: Machine, opts: AnsibleOptions, workDir: string, hasSudo: boolean): Promise<void> {
  const playbook = await ctx.hostPath(opts.playbook_file);
  const alias = opts.host_alias ?? "default";
  const inventory = await writeInventory({
    connection: machine.connection,
    alias,
    groups: opts.groups ?? [],
    groupVars: opts.inventory_group_vars ?? {},
    workDir,
    hasSudo,
  });
  const extraVars = await writeExtraVars(ctx, opts, join(workDir, "extra-vars.json"));
  const galaxy = await installRequirements(ctx, opts, workDir);
  const controlDir = join(workDir, "cp");
  await mkdir(controlDir, { mode: 0o700 });
  const roles = [...(await hostRolesPaths(ctx, opts)), ...galaxy.roles];
  const env: Record<string, string> = {
    ...inheritedEnv(),
    ...ansibleDefaults(),
    ANSIBLE_STDOUT_CALLBACK: "ansible.posix.jsonl",
    ANSIBLE_HOST_KEY_CHECKING: "True",
    ANSIBLE_LOCAL_TEMP: join(workDir, "tmp"),
    // SSH connections are shared between tasks (much faster) and closed when the run ends, sockets in the work directory.
    ANSIBLE_SSH_CONTROL_PATH_DIR: controlDir,
    ANSIBLE_SSH_ARGS: "-o ControlMaster=auto -o ControlPersist=120s",
    ...(roles.length ? { ANSIBLE_ROLES_PATH: roles.join(":") } : {}),
    // Installed collections first, then Ansible's default places (the packaged collections are found on Python's path).
    ...(galaxy.collections.length
      ? { ANSIBLE_COLLECTIONS_PATH: [...galaxy.collections, "~/.ansible/collections", "/usr/share/ansible/collections"].join(":") }
      : {}),
    ...(opts.ansible_cfg ? { ANSIBLE_CONFIG: await ctx.hostPath(opts.ansible_cfg) } : {}),
    ...inventory.env,
    ...envVars(opts),
  };
  const args = [
    "-i",
    inventory.path,
    "--limit",
    alias,
    ...commonArgs(opts, extraVars, Boolean(machine.connection.kind === "ssh" && machine.connection.become)),
    playbook,
  ];
  const report = playbookReport();
  const tail: string[] = [];
  try {
    const code = await runProcess(opts.command ?? "ansible-playbook", args, {
      cwd: dirname(playbook),
      env,
      signal: ctx.signal,
      onLine: (stream, line) => {
        const shown = stream === "stdout" ? report.line(line) : [line];
        for (const text of shown) {
          ctx.output(stream, `${text}\n`);
          remember(tail, text);
        }
      },
    });
    const stats = report.stats()?.[alias];
    if (stats) ctx.log.info(`ansible: ${alias}: ${summarize(stats)}`);
    if (code !== 0) throw playbookFailure(ctx, opts, code, report.failures(), tail, inventory.path);
  } finally {
    await closeSshMasters(controlDir);
  }
}

/** Stages the playbook directory, roles and vars into the machine and runs `ansible-playbook -c local` there. */
async function runLocal(ctx: BakeContext, machine: Machine, opts: AnsibleOptions, workDir: string): Promise<void> {
  const playbook = await ctx.hostPath(opts.playbook_file);
  const staging = `/tmp/kiln-ansible-${randomBytes(6).toString("hex")}`;
  const run = async (command: string) => {
    const result = await machine.exec(command, { user: "root", signal: ctx.signal });
    if (result.exitCode !== 0) throw new KilnError("E_PROVISION", `ansible: ${command} failed on the machine: ${lastLines(result.stderr)}`);
  };
  try {
    await run(`install -d -m 0700 ${staging}`);
    await machine.upload(dirname(playbook), `${staging}/playbook`);
    const galaxy = await installRequirements(ctx, opts, workDir);
    const roles = await stageAll(machine, [...(await hostRolesPaths(ctx, opts)), ...galaxy.roles], `${staging}/roles`);
    const collections = await stageAll(machine, galaxy.collections, `${staging}/collections`);
    const vars = await writeExtraVars(ctx, opts, join(workDir, "extra-vars.json"));
    await machine.upload(vars, `${staging}/extra-vars.json`, { mode: 0o600 });
    if (opts.ansible_cfg) await machine.upload(await ctx.hostPath(opts.ansible_cfg), `${staging}/ansible.cfg`);
    const alias = opts.host_alias ?? "default";
    const inventory = inventoryDocument(alias, { ansible_connection: "local" }, opts.groups ?? [], opts.inventory_group_vars ?? {});
    await machine.upload(Readable.from([JSON.stringify(inventory)]), `${staging}/inventory.json`, { mode: 0o600 });
    const env = {
      ...ansibleDefaults(),
      ...(roles.length ? { ANSIBLE_ROLES_PATH: roles.join(":") } : {}),
      ...(collections.length ? { ANSIBLE_COLLECTIONS_PATH: [...collections, "/usr/share/ansible/collections"].join(":") } : {}),
      ...(opts.ansible_cfg ? { ANSIBLE_CONFIG: `${staging}/ansible.cfg` } : {}),
      ...envVars(opts),
    };
    const args = [
      "-i",
      `${staging}/inventory.json`,
      "--limit",
      alias,
      ...commonArgs(opts, `${staging}/extra-vars.json`, false),
      basename(playbook),
    ];
    const tail: string[] = [];
    const result = await machine.exec([opts.command ?? "ansible-playbook", ...args], {
      user: "root",
      cwd: `${staging}/playbook`,
      env,
      signal: ctx.signal,
      onOutput: (stream, chunk) => {
        ctx.output(stream, chunk);
        for (const line of chunk.split("\n")) remember(tail, line);
      },
    });
    if (result.exitCode !== 0) throw playbookFailure(ctx, opts, result.exitCode, [], tail, undefined);
  } finally {
    // Staging never reaches the image; a failure to remove it must not hide the step's own outcome.
    if (!ctx.signal.aborted)
      await run(`rm -rf ${staging}`).catch(() => ctx.log.warn(`ansible: could not remove ${staging} from the machine`));
  }
}

/** Ansible's settings for an unattended run whose output Kiln reads: no colour, no retry files in the project. */
function ansibleDefaults(): Record<string, string> {
  return {
    ANSIBLE_NOCOLOR: "1",
    ANSIBLE_FORCE_COLOR: "0",
    ANSIBLE_RETRY_FILES_ENABLED: "False",
    ANSIBLE_PIPELINING: "True",
    PYTHONUNBUFFERED: "1",
  };
}

function commonArgs(opts: AnsibleOptions, extraVars: string, loginIsNotRoot: boolean): string[] {
  const become = opts.become ?? loginIsNotRoot;
  return [
    "-e",
    `@${extraVars}`,
    ...(become ? ["--become", "--become-user", opts.become_user ?? "root"] : opts.become_user ? ["--become-user", opts.become_user] : []),
    ...(opts.check ? ["--check"] : []),
    ...(opts.tags?.length ? ["--tags", opts.tags.join(",")] : []),
    ...(opts.skip_tags?.length ? ["--skip-tags", opts.skip_tags.join(",")] : []),
    ...(opts.extra_arguments ?? []),
  ];
}

/** Extra vars and Kiln's own (`kiln_image`, `kiln_run_id`) as JSON in a 0600 file: never on a command line. */
async function writeExtraVars(ctx: BakeContext, opts: AnsibleOptions, path: string): Promise<string> {
  const vars = { kiln_image: ctx.image, kiln_run_id: ctx.runId, ...opts.extra_vars };
  await writeFile(path, JSON.stringify(vars), { mode: 0o600 });
  return path;
}

/** Where the requirements file's roles and collections were installed (local sources: no Galaxy access is assumed). */
interface Installed {
  roles: string[];
  collections: string[];
}

async function installRequirements(ctx: BakeContext, opts: AnsibleOptions, workDir: string): Promise<Installed> {
  if (!opts.galaxy_file) return { roles: [], collections: [] };
  const file = await ctx.hostPath(opts.galaxy_file);
  const wanted = await readRequirements(ctx, file);
  const installed: Installed = { roles: [], collections: [] };
  const galaxy = (opts.command ?? "ansible-playbook").replace(/ansible-playbook$/, "ansible-galaxy");
  const env = { ...inheritedEnv(), ...ansibleDefaults(), ...envVars(opts) };
  for (const kind of ["roles", "collections"] as const) {
    if (wanted[kind] === 0) continue;
    const into = join(workDir, `galaxy-${kind}`);
    const tail: string[] = [];
    const onLine = (stream: "stdout" | "stderr", line: string) => {
      ctx.output(stream, `${line}\n`);
      remember(tail, line);
    };
    const args = [kind === "roles" ? "role" : "collection", "install", "-r", file, "-p", into];
    const code = await runProcess(galaxy, args, { cwd: dirname(file), env, signal: ctx.signal, onLine });
    if (code !== 0)
      throw new KilnError(
        "E_PROVISION",
        ctx.redact(`ansible: ansible-galaxy ${args[0]} install failed (exit ${code}):\n${tail.join("\n")}`),
        {
          hint: "requirements name local paths or tarballs, or need Galaxy access from this host",
        },
      );
    installed[kind].push(into);
  }
  return installed;
}

function envVars(opts: AnsibleOptions): Record<string, string> {
  const vars = opts.ansible_env_vars;
  if (!Array.isArray(vars)) return vars ?? {};
  return Object.fromEntries(vars.map((pair) => [pair.slice(0, pair.indexOf("=")), pair.slice(pair.indexOf("=") + 1)]));
}

/** The host's environment minus what would steer Ansible elsewhere than the run says. */
function inheritedEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env))
    if (value !== undefined && !name.startsWith("ANSIBLE_") && !name.startsWith("DOCKER_")) env[name] = value;
  return env;
}

function playbookFailure(
  ctx: BakeContext,
  opts: AnsibleOptions,
  code: number,
  failures: { task: string; host: string; message: string; unreachable: boolean }[],
  tail: string[],
  inventory: string | undefined,
): KilnError {
  const described = failures.map(
    (failure) => `task "${failure.task}" ${failure.unreachable ? "could not reach" : "failed on"} ${failure.host}: ${failure.message}`,
  );
  const detail = described.length ? described.join("\n") : `last output:\n${tail.map((line) => `  ${line}`).join("\n")}`;
  const message = `ansible: ${opts.playbook_file} failed (ansible-playbook exited with ${code})\n${detail}`;
  return new KilnError("E_PROVISION", ctx.redact(message), {
    hint: inventory
      ? `fix the playbook; with --on-error=abort the machine and the inventory (${inventory}) are kept to run it again by hand`
      : "fix the playbook; with --on-error=abort the machine is kept",
  });
}

const TAIL_LINES = 15;

function remember(tail: string[], line: string): void {
  if (line.trim() === "") return;
  tail.push(line);
  if (tail.length > TAIL_LINES) tail.shift();
}

function lastLines(text: string): string {
  return text.trim().split("\n").slice(-5).join("\n");
}

/** Ends the shared SSH connections Ansible left running (ControlPersist), so nothing outlives the step. */
async function closeSshMasters(controlDir: string): Promise<void> {
  const sockets = await readdir(controlDir).catch(() => []);
  await Promise.all(
    sockets.map((name) =>
      runProcess("ssh", ["-o", `ControlPath=${join(controlDir, name)}`, "-O", "exit", "kiln-control"], {
        cwd: controlDir,
        env: inheritedEnv(),
        signal: new AbortController().signal,
        onLine: () => {},
      }).catch(() => 0),
    ),
  );
}

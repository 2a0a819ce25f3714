import { createHash, randomBytes } from "node:crypto";
import { basename } from "node:path";
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
import { readHostFile } from "@kiln/core/kit";

/** Options of the `shell` provisioner. Set exactly one of `inline`, `script` or `scripts`. */
export interface ShellOptions {
  /** Commands run in order as one script (`#!/bin/sh -e`: the first failing command stops it). */
  inline?: string[] | undefined;
  /** Local script (relative to the bake file's directory) uploaded to the machine and run. */
  script?: string | undefined;
  /** Local scripts uploaded and run one after another; the first failure stops the step. */
  scripts?: string[] | undefined;
  /** Environment variables for the commands. Values may be secrets: they are never logged or put on a command line. */
  env?: Record<string, string> | undefined;
  /**
   * How a script is started. `{{ path }}` is the script's path on the machine, `{{ vars }}` re-exports `env` as
   * `NAME="$NAME"` assignments (so `sudo {{ vars }} {{ path }}` keeps them). Packer's `{{ .Path }}`/`{{ .Vars }}` also work,
   * and are the form to use in a bake file, where `{{ name }}` means a bake variable.
   * Default `{{ vars }} {{ path }}` (the script is uploaded executable, so no chmod is needed, whatever `user` is).
   */
  execute_command?: string | undefined;
  /** The machine may go away during the step (reboot, shutdown): if it no longer answers afterwards, a failed exit is accepted. */
  expect_disconnect?: boolean | undefined;
  /** Exit codes that count as success. Default [0]. */
  valid_exit_codes?: number[] | undefined;
  /** User the commands run as. Default: the machine's default user. */
  user?: string | undefined;
  /** Working directory on the machine the commands start in. */
  cwd?: string | undefined;
}

const DEFAULT_EXECUTE_COMMAND = "{{ vars }} {{ path }}";
/** `{{ path }}`, `{{ vars }}`, and Packer's `{{ .Path }}`, `{{ .Vars }}`. Core leaves the dotted form alone when it fills in variables. */
const PLACEHOLDER = /\{\{\s*\.?(\w+)\s*\}\}/g;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const TAIL_LINES = 10;

const schema = z
  .strictObject({
    inline: z
      .array(z.string())
      .min(1)
      .optional()
      .describe("Commands run in order as one /bin/sh -e script: the first failing command stops it. Set one of inline, script, scripts."),
    script: z.string().min(1).optional().describe("Local script (relative to the bake file) uploaded to the machine and run."),
    scripts: z
      .array(z.string().min(1))
      .min(1)
      .optional()
      .describe("Local scripts (relative to the bake file) uploaded and run one after another; the first failure stops the step."),
    env: z
      .record(z.string(), z.string())
      .superRefine((env, issues) => {
        for (const name of Object.keys(env).filter((key) => !ENV_NAME.test(key))) {
          issues.addIssue({
            code: "custom",
            path: [name],
            message: `"${name}" is not a shell variable name (letters, digits and _, not starting with a digit)`,
          });
        }
      })
      .optional()
      .describe("Environment variables for the commands. Values may be secrets: never logged, never on a command line."),
    execute_command: z
      .string()
      .refine((text) => [...text.matchAll(PLACEHOLDER)].every((match) => /^(path|vars)$/i.test(match[1] ?? "")), {
        message: "execute_command knows only the placeholders {{ path }} and {{ vars }}",
      })
      .refine((text) => /\{\{\s*\.?path\s*\}\}/i.test(text), { message: "execute_command must run {{ path }}" })
      .optional()
      .describe(
        "How a script is started: {{ .Path }} is its path on the machine, {{ .Vars }} re-exports env (sudo {{ .Vars }} {{ .Path }}). " +
          "Default {{ .Vars }} {{ .Path }}.",
      ),
    expect_disconnect: z
      .boolean()
      .optional()
      .describe("The machine may go away during the step (a reboot): if it no longer answers afterwards, a failed exit is accepted."),
    valid_exit_codes: z.array(z.number().int()).min(1).optional().describe("Exit codes that count as success. Default [0]."),
    user: z.string().min(1).optional().describe("User the commands run as. Default: the machine's default user."),
    cwd: z.string().min(1).optional().describe("Working directory on the machine the commands start in."),
  })
  .refine((opts) => [opts.inline, opts.script, opts.scripts].filter((item) => item !== undefined).length === 1, {
    message: "set exactly one of inline, script or scripts",
  });

/** One thing to run: a name for messages and the script's text. */
interface Job {
  label: string;
  fileName: string;
  content(): Promise<Buffer>;
}

export const shell = defineProvisioner<ShellOptions>(() => ({
  name: "shell",
  schema: schema satisfies StandardSchemaV1<unknown, ShellOptions>,
  // The command line is visible to every process on the machine; `env:` values are not (they never go on a command line).
  exposedOptions: [{ path: ["execute_command"], where: "the command line on the machine (ps shows it)" }],
  hostPaths: (opts) =>
    opts.script !== undefined
      ? [{ path: ["script"], value: opts.script, access: "read" }]
      : (opts.scripts ?? []).map((value, index) => ({ path: ["scripts", index], value, access: "read" as const })),

  async fingerprint(ctx, opts) {
    const hash = createHash("sha256").update(canonicalJson(opts));
    // Paths as written (not absolute) so the key is the same on every machine that checks out the bake file.
    for (const path of scriptPaths(opts)) hash.update(`\0${path}\0`).update(await readScript(ctx, path));
    return hash.digest("hex");
  },

  async run(ctx, machine, opts) {
    const jobs = opts.inline ? [inlineJob(opts.inline)] : scriptPaths(opts).map((path) => scriptJob(ctx, path));
    for (const job of jobs) await runJob(ctx, machine, opts, job);
  },
}));

function scriptPaths(opts: ShellOptions): string[] {
  return opts.scripts ?? (opts.script === undefined ? [] : [opts.script]);
}

/** Scripts are text people write: a larger "script" (or `/dev/zero`) is a mistake, refused before it fills memory. */
const MAX_SCRIPT_BYTES = 16 * 1024 * 1024;

function readScript(ctx: BakeContext, path: string): Promise<Buffer> {
  return readHostFile(ctx, path, { what: "shell: script", maxBytes: MAX_SCRIPT_BYTES });
}

function inlineJob(commands: string[]): Job {
  // `set -e` again in the body: a custom execute_command such as `sh {{ path }}` bypasses the shebang.
  const text = `#!/bin/sh -e\nset -e\n${commands.join("\n")}\n`;
  return {
    label: `inline commands ${describeCommands(commands)}`,
    fileName: "inline.sh",
    content: async () => Buffer.from(text),
  };
}

function scriptJob(ctx: BakeContext, path: string): Job {
  return {
    label: `script ${path}`,
    fileName: basename(path),
    // Read here rather than by path on upload, so a missing file gives the same E_CONFIG as the fingerprint.
    content: () => readScript(ctx, path),
  };
}

/** Writes the script under /tmp, runs it with execute_command, removes it, and judges the exit code: all in one command. */
async function runJob(ctx: BakeContext, machine: Machine, opts: ShellOptions, job: Job): Promise<void> {
  const remotePath = `/tmp/kiln-${randomBytes(4).toString("hex")}-${job.fileName.replace(/[^\w.-]/g, "_")}`;
  const script = await job.content();
  const tail = outputTail();
  const started = renderCommand(opts.execute_command ?? DEFAULT_EXECUTE_COMMAND, remotePath, Object.keys(opts.env ?? {}));
  const command = wrapScript(started, shellQuote(remotePath));
  const outcome = await machine
    .exec(command, {
      stdin: script,
      ...(opts.env ? { env: opts.env } : {}),
      ...(opts.user ? { user: opts.user } : {}),
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      signal: ctx.signal,
      onOutput: (stream, chunk) => {
        tail.add(stream, chunk);
        ctx.output(stream, chunk);
      },
    })
    .catch((error: unknown) => ({ error }));
  const validCodes = opts.valid_exit_codes ?? [0];
  if ("exitCode" in outcome && validCodes.includes(outcome.exitCode)) return;
  // A reboot shows up as a failed exit or a dropped connection; it is only "expected" if the machine is really gone.
  if (opts.expect_disconnect && !ctx.signal.aborted && !(await answers(machine))) {
    ctx.log.info(`shell: the machine went away during ${job.label}; accepted because expect_disconnect is set`);
    return;
  }
  if ("error" in outcome && !ctx.signal.aborted) await removeQuietly(machine, remotePath);
  if ("error" in outcome)
    throw ctx.signal.aborted ? outcome.error : toKilnError(outcome.error, "E_PROVISION", `shell: ${job.label} could not run`);
  const lines = tail.lines().map((line) => `  ${ctx.redact(line)}`);
  const message = `shell: ${job.label} exited with code ${outcome.exitCode}${lines.length ? `\nlast output:\n${lines.join("\n")}` : ""}`;
  throw new KilnError("E_PROVISION", ctx.redact(message), {
    hint: opts.valid_exit_codes
      ? `accepted exit codes: ${validCodes.join(", ")}`
      : "fix the command, or list accepted codes in valid_exit_codes",
  });
}

/** Fills in the placeholders. Env values stay out of the command text: `{{ vars }}` refers to them by name. */
export function renderCommand(template: string, path: string, envNames: string[]): string {
  const vars = envNames.map((name) => `${name}="$${name}"`).join(" ");
  return template.replace(PLACEHOLDER, (_whole, name: string) => (name.toLowerCase() === "path" ? shellQuote(path) : vars)).trim();
}

/** Exit code of the wrapper when the script cannot be written to the machine (a full or read-only /tmp). */
const CANNOT_WRITE_SCRIPT = 125;

/**
 * The script arrives on stdin and is written, run and removed by one command: every command costs a round trip to the machine
 * (an upload as much as an exec), and a bake runs many steps. The script's own stdin is /dev/null, as it would be without this.
 */
function wrapScript(started: string, path: string): string {
  return [
    `cat > ${path} && chmod 0755 ${path} || { echo "kiln: cannot write the script to ${path}" >&2; exit ${CANNOT_WRITE_SCRIPT}; }`,
    // A group, so the redirection covers an execute_command that is a list (`a && b`).
    `{\n${started}\n} </dev/null`,
    "kiln_status=$?",
    `rm -f ${path}`,
    "exit $kiln_status",
  ].join("\n");
}

function shellQuote(text: string): string {
  return /^[\w./-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

/** `["apt-get update", "apt-get install -y curl"]`, shortened so a long list still reads as one message. */
function describeCommands(commands: string[]): string {
  const shown = commands.slice(0, 3).map((command) => JSON.stringify(command.length > 80 ? `${command.slice(0, 77)}...` : command));
  return `[${shown.join(", ")}${commands.length > 3 ? `, …${commands.length - 3} more` : ""}]`;
}

type Stream = "stdout" | "stderr";

/**
 * Keeps the last lines of output for the error message, in arrival order. Lines are split per stream so interleaved
 * chunks don't merge. stdout and stderr travel separately, so a final error can arrive before the stdout before it; the
 * last stderr lines are therefore always kept, even when more than TAIL_LINES stdout lines came after them.
 */
function outputTail(): { add(stream: Stream, chunk: string): void; lines(): string[] } {
  const pending = { stdout: "", stderr: "" };
  const kept = { stdout: [] as { seq: number; text: string }[], stderr: [] as { seq: number; text: string }[] };
  let seq = 0;
  const keep = (stream: Stream, text: string) => {
    if (text.trim() !== "") kept[stream] = [...kept[stream], { seq: seq++, text: text.replace(/\r$/, "") }].slice(-TAIL_LINES);
  };
  return {
    add(stream, chunk) {
      const parts = (pending[stream] + chunk).split("\n");
      pending[stream] = (parts.pop() ?? "").slice(-4096);
      for (const line of parts) keep(stream, line);
    },
    lines() {
      for (const stream of ["stdout", "stderr"] as const) keep(stream, pending[stream]);
      pending.stdout = pending.stderr = "";
      const all = [...kept.stdout, ...kept.stderr].sort((a, b) => a.seq - b.seq);
      const chosen = new Set([...all.slice(-TAIL_LINES), ...kept.stderr.slice(-3)]);
      return all.filter((line) => chosen.has(line)).map((line) => line.text);
    },
  };
}

/** Whether the machine still runs commands; a machine that rebooted or shut down does not. */
async function answers(machine: Machine): Promise<boolean> {
  try {
    return (await machine.exec("true", { timeout: 10_000 })).exitCode === 0;
  } catch {
    return false;
  }
}

async function removeQuietly(machine: Machine, path: string): Promise<void> {
  try {
    await machine.exec(["rm", "-f", path]);
  } catch {
    // Leaving a file in /tmp of a build machine is harmless; the step's own outcome matters more.
  }
}

import { parseArgs, type ParseArgsConfig } from "node:util";
import { KilnError } from "@kiln/core";

/** Flags every command accepts. */
const COMMON = {
  help: { type: "boolean", short: "h" },
  dir: { type: "string", short: "C" },
  file: { type: "string", short: "f" },
  var: { type: "string", multiple: true },
  "var-file": { type: "string", multiple: true },
  "allow-path": { type: "string", multiple: true },
  json: { type: "boolean" },
} as const satisfies ParseArgsConfig["options"];

export const COMMAND_OPTIONS = {
  build: {
    ...COMMON,
    only: { type: "string", multiple: true },
    except: { type: "string", multiple: true },
    force: { type: "boolean" },
    "force-image": { type: "string", multiple: true },
    parallel: { type: "string" },
    "rebake-outdated": { type: "boolean" },
    "max-age": { type: "string" },
    "dry-run": { type: "boolean" },
    "on-error": { type: "string" },
    "cleanup-timeout": { type: "string" },
    manifest: { type: "string" },
  },
  validate: COMMON,
  plan: {
    ...COMMON,
    only: { type: "string", multiple: true },
    except: { type: "string", multiple: true },
    force: { type: "boolean" },
    "force-image": { type: "string", multiple: true },
    matrix: { type: "boolean" },
  },
  verify: { ...COMMON, "runtime-file": { type: "string" } },
  inspect: COMMON,
  images: { ...COMMON, format: { type: "string" } },
  provenance: COMMON,
  outdated: { ...COMMON, "max-age": { type: "string" } },
  promote: { ...COMMON, rollback: { type: "boolean" }, force: { type: "boolean" }, artifact: { type: "string" } },
  prune: { ...COMMON, keep: { type: "string" }, "dry-run": { type: "boolean" } },
  init: { help: COMMON.help, dir: COMMON.dir, force: { type: "boolean" } },
  schema: { help: COMMON.help, dir: COMMON.dir },
  plugins: { help: COMMON.help, dir: COMMON.dir, file: COMMON.file, json: COMMON.json },
} as const satisfies Record<string, ParseArgsConfig["options"]>;

export type CommandName = keyof typeof COMMAND_OPTIONS;

/**
 * Packer users type `-only=web` and `-var k=v`: accept single-dash long flags by rewriting them to `--`. `--force=web` (a flag
 * that is also a boolean) becomes `--force-image web`.
 */
export function normalizeFlags(argv: string[], longNames: string[]): string[] {
  return argv.flatMap((arg) => {
    const force = /^--?force=(.+)$/.exec(arg);
    if (force && longNames.includes("force-image")) return ["--force-image", force[1] as string];
    const match = /^-([a-z][a-z-]+)(=.*)?$/.exec(arg);
    return match && longNames.includes(match[1] as string) ? [`-${arg}`] : [arg];
  });
}

export function parseCommandArgs<C extends CommandName>(command: C, argv: string[]) {
  const options = COMMAND_OPTIONS[command];
  try {
    return parseArgs({ args: normalizeFlags(argv, Object.keys(options)), options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new KilnError("E_CONFIG", `kiln ${command}: ${(error as Error).message}`, { hint: `see kiln help ${command}` });
  }
}

/** `--only a,b --only c` → [a, b, c] */
export function listFlag(values: string[] | undefined): string[] | undefined {
  return values
    ?.flatMap((value) => value.split(","))
    .map((value) => value.trim())
    .filter(Boolean);
}

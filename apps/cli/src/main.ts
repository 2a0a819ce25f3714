import { isKilnError, KilnError } from "@kiln/core";
import { helpText } from "./commands/help.js";
import { errorLine, writeJsonLine } from "./render/json.js";
import { errorText } from "./render/text.js";

type Command = (argv: string[], version: string) => Promise<number>;

/** Each command's module is imported only when it runs, so `kiln validate` never loads a driver SDK it does not need. */
const COMMANDS: Record<string, () => Promise<Command>> = {
  build: async () => (await import("./commands/build.js")).build,
  validate: async () => (await import("./commands/validate.js")).validate,
  plan: async () => (await import("./commands/plan.js")).plan,
  images: async () => (await import("./commands/fleet.js")).images,
  provenance: async () => (await import("./commands/fleet.js")).provenance,
  outdated: async () => (await import("./commands/fleet.js")).outdated,
  promote: async () => (await import("./commands/fleet.js")).promote,
  prune: async () => (await import("./commands/fleet.js")).prune,
  verify: async () => (await import("./commands/verify.js")).verify,
  inspect: async () => (await import("./commands/inspect.js")).inspect,
  init: async () => (await import("./commands/init.js")).init,
  schema: async () => (await import("./commands/schema.js")).schema,
  plugins: async () => (await import("./commands/plugins.js")).plugins,
};

export async function main(argv: string[], version: string): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") return help(rest[0]);
  const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!load) {
    process.stderr.write(`${errorText(new KilnError("E_CONFIG", `unknown command "${name}"`, { hint: "run kiln help" }))}\n`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) return help(name);
  try {
    return await (await load())(rest, version);
  } catch (error) {
    if (rest.includes("--json")) writeJsonLine(errorLine(error));
    process.stderr.write(`${errorText(error)}\n`);
    return isKilnError(error) ? error.exitCode : 1;
  }
}

function help(command: string | undefined): number {
  const text = helpText(command);
  if (!text) {
    process.stderr.write(`error: no help for "${command}" — run kiln help\n`);
    return 2;
  }
  process.stdout.write(`${text}\n`);
  return 0;
}

import { constants } from "node:fs";
import { access, stat } from "node:fs/promises";
import { delimiter, join } from "node:path";
import type { PreflightProblem } from "../types.js";

/** The path of an executable `command` on PATH (or `command` itself when it contains a slash and is executable). */
export async function findExecutable(command: string, path = process.env.PATH ?? ""): Promise<string | undefined> {
  const candidates = command.includes("/")
    ? [command]
    : path
        .split(delimiter)
        .filter(Boolean)
        .map((dir) => join(dir, command));
  for (const candidate of candidates) {
    // A directory passes the X_OK test too: only a file is a command.
    const isFile = await stat(candidate).then(
      (info) => info.isFile(),
      () => false,
    );
    if (
      isFile &&
      (await access(candidate, constants.X_OK).then(
        () => true,
        () => false,
      ))
    )
      return candidate;
  }
  return undefined;
}

export interface RequiredTool {
  /** Executable name, e.g. `lxc-create`. */
  command: string;
  /** How to install it, e.g. `apt-get install -y lxc`. */
  install: string;
}

/** Preflight problems for the tools that are not on PATH: `lxc-create not found — install it: apt-get install -y lxc`. */
export async function missingTools(tools: readonly RequiredTool[]): Promise<PreflightProblem[]> {
  const problems: PreflightProblem[] = [];
  for (const tool of tools) {
    if (!(await findExecutable(tool.command)))
      problems.push({ message: `${tool.command} not found on this host`, hint: `install it: ${tool.install}` });
  }
  return problems;
}

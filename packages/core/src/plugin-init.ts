import { homedir } from "node:os";
import { join } from "node:path";
import type { Logger, PluginInit } from "./types.js";

export type PluginKind = "driver" | "provisioner";

/**
 * What a plugin factory is given: the bake file's directory, its own state and cache directories (named after the plugin
 * kind and name, so a driver and a provisioner of one name never share one), and a logger.
 */
export function pluginInit(kind: PluginKind, name: string, cwd: string, log: Logger): PluginInit {
  const env = process.env;
  const own = `${kind}-${name.replace(/^@/, "").replace(/[^A-Za-z0-9_.-]/g, "-")}`;
  const stateRoot = env.KILN_STATE_DIR ?? join(env.XDG_STATE_HOME ?? join(homedir(), ".local", "state"), "kiln");
  const cacheRoot = env.KILN_CACHE_DIR ?? join(env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "kiln");
  return { cwd, stateDir: join(stateRoot, own), cacheDir: join(cacheRoot, own), log };
}

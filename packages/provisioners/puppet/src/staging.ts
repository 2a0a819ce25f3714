import { stat } from "node:fs/promises";
import { basename, posix } from "node:path";
import { KilnError, toKilnError, type BakeContext, type Machine } from "@kiln/core";
import type { PuppetOptions } from "./puppet.js";

/** What Kiln puts in the staging directory, and removes from it afterwards. */
const STAGED = ["manifests", "modules", "hiera"] as const;

export interface LocalInput {
  option: (string | number)[];
  value: string;
  kind: "file" | "directory" | "either";
}

/** Every host path the options name, with the option it comes from. */
export function localInputs(opts: PuppetOptions): LocalInput[] {
  return [
    { option: ["manifest_file"], value: opts.manifest_file, kind: "either" as const },
    ...(opts.module_paths ?? []).map((value, index) => ({ option: ["module_paths", index], value, kind: "directory" as const })),
    ...(opts.hiera_config_path === undefined
      ? []
      : [{ option: ["hiera_config_path"], value: opts.hiera_config_path, kind: "file" as const }]),
    ...(opts.hiera_data_path === undefined
      ? []
      : [{ option: ["hiera_data_path"], value: opts.hiera_data_path, kind: "directory" as const }]),
  ];
}

/** The real path of a host input, checked to exist and be the right kind, or E_CONFIG naming the option. */
export async function localPath(ctx: BakeContext, input: LocalInput): Promise<string> {
  const option = input.option.join(".");
  const local = await ctx.hostPath(input.value, "read");
  const info = await stat(local).catch((error: unknown) => {
    throw new KilnError("E_CONFIG", `puppet: ${option} ${input.value} not found (looked at ${local})`, {
      hint: "paths are relative to the bake file's directory; check the name or create it",
      cause: error,
    });
  });
  const kind = info.isDirectory() ? "directory" : info.isFile() ? "file" : "other";
  if (kind === "other" || (input.kind !== "either" && kind !== input.kind)) {
    const wanted = input.kind === "either" ? "a file or a directory" : `a ${input.kind}`;
    throw new KilnError("E_CONFIG", `puppet: ${option} ${input.value} is not ${wanted}`);
  }
  return local;
}

/** Where hiera data is staged relative to the hiera config's directory (`data`), or undefined when it is not inside it. */
export function hieraDataPlace(hieraConfigPath: string, hieraDataPath: string): string | undefined {
  const root = "/project";
  const configDir = posix.resolve(root, posix.dirname(hieraConfigPath.replaceAll("\\", "/")));
  const relative = posix.relative(configDir, posix.resolve(root, hieraDataPath.replaceAll("\\", "/")));
  return relative === "" || relative === ".." || relative.startsWith("../") || posix.isAbsolute(relative) ? undefined : relative;
}

export interface Staging {
  path: string;
  /** A staging_directory that existed before: only what Kiln put in it is removed. */
  existed: boolean;
}

export async function createStaging(ctx: BakeContext, machine: Machine, directory: string | undefined): Promise<Staging> {
  // The directory given: created if missing, and cleared of what an earlier run may have left in Kiln's subdirectories.
  const script = directory
    ? `if [ -e "$1" ]; then echo existed; fi; mkdir -p "$1" && cd "$1" && rm -rf ${STAGED.join(" ")}`
    : "mktemp -d /tmp/kiln-puppet-XXXXXX";
  const result = await machine.exec(["/bin/sh", "-c", script, "sh", directory ?? ""], { user: "root", signal: ctx.signal });
  const path = directory ? posix.normalize(directory).replace(/(.)\/$/, "$1") : result.stdout.trim();
  if (result.exitCode !== 0 || path === "")
    throw new KilnError("E_PROVISION", `puppet: cannot create the staging directory on machine ${machine.id}: ${result.stderr.trim()}`, {
      hint: directory ? "check staging_directory" : "the machine needs a writable /tmp and mktemp",
    });
  return { path, existed: result.stdout.trim() === "existed" };
}

export async function removeStaging(machine: Machine, staging: Staging): Promise<KilnError | undefined> {
  const targets = staging.existed ? STAGED.map((name) => posix.join(staging.path, name)) : [staging.path];
  try {
    const result = await machine.exec(["rm", "-rf", "--", ...targets], { user: "root", timeout: 120_000 });
    if (result.exitCode === 0) return undefined;
    return new KilnError("E_PROVISION", `puppet: cannot remove the staging directory ${staging.path}: ${result.stderr.trim()}`, {
      hint: "it would be captured in the image; set clean_staging_directory: false to keep it on purpose",
    });
  } catch (error) {
    return toKilnError(error, "E_PROVISION", `puppet: cannot remove the staging directory ${staging.path}`);
  }
}

/** Uploads the manifest, modules and hiera files; returns the paths `puppet apply` is given. */
export async function stage(
  ctx: BakeContext,
  machine: Machine,
  opts: PuppetOptions,
  staging: string,
): Promise<{ manifest: string; modulePath: string | undefined; hieraConfig: string | undefined }> {
  const manifestLocal = await localPath(ctx, { option: ["manifest_file"], value: opts.manifest_file, kind: "either" });
  const manifestIsDir = (await stat(manifestLocal)).isDirectory();
  const manifestsDir = posix.join(staging, "manifests");
  const manifest = manifestIsDir ? manifestsDir : posix.join(manifestsDir, safeName(basename(manifestLocal)));
  await machine.upload(manifestLocal, manifest, { mode: 0o644 });

  const modules: string[] = [];
  for (const [index, value] of (opts.module_paths ?? []).entries()) {
    const local = await localPath(ctx, { option: ["module_paths", index], value, kind: "directory" });
    const remote = posix.join(staging, "modules", String(index));
    await machine.upload(local, remote);
    modules.push(remote);
  }

  let hieraConfig: string | undefined;
  if (opts.hiera_config_path !== undefined) {
    const local = await localPath(ctx, { option: ["hiera_config_path"], value: opts.hiera_config_path, kind: "file" });
    hieraConfig = posix.join(staging, "hiera", "hiera.yaml");
    await machine.upload(local, hieraConfig, { mode: 0o644 });
    const place = opts.hiera_data_path === undefined ? undefined : hieraDataPlace(opts.hiera_config_path, opts.hiera_data_path);
    if (opts.hiera_data_path !== undefined && place !== undefined) {
      const data = await localPath(ctx, { option: ["hiera_data_path"], value: opts.hiera_data_path, kind: "directory" });
      await machine.upload(data, posix.join(staging, "hiera", place));
    }
  }
  return { manifest, modulePath: modules.length > 0 ? modules.join(":") : undefined, hieraConfig };
}

function safeName(name: string): string {
  return name.replace(/[^\w.-]/g, "_") || "site.pp";
}

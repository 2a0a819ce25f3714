import { createHash } from "node:crypto";
import type { Stats } from "node:fs";
import { lstat, mkdir, readdir, stat } from "node:fs/promises";
import { basename, dirname, join, posix, resolve } from "node:path";
import { Readable } from "node:stream";
import { z } from "@kiln/core";
import { canonicalJson, defineProvisioner, KilnError, type BakeContext, type Machine, type StandardSchemaV1 } from "@kiln/core";
import { hashTree } from "@kiln/core/kit";

/**
 * Options of the `file` provisioner. Set exactly one of `source`, `sources` or `content`. Slashes follow Packer: a directory
 * source without a trailing slash is copied as a directory into `destination` (`./site` → `/var/www/site`); with one, its
 * contents are (`./site/` → `/var/www/`). A file lands inside `destination` when it ends in `/`, otherwise exactly at it.
 */
export interface FileOptions {
  /** File or directory to copy: local (relative to the bake file's directory) for uploads, an absolute path on the machine for downloads. */
  source?: string | undefined;
  /** Several sources, each copied like `source`; `destination` must then be a directory (end in `/`). */
  sources?: string[] | undefined;
  /** Text written to the file `destination` (uploads only), instead of copying a source. */
  content?: string | undefined;
  /** Absolute path on the machine (upload), or local path relative to the bake file's directory (download). */
  destination: string;
  /** `upload` (default): local → machine. `download`: machine → local. */
  direction?: "upload" | "download" | undefined;
  /**
   * Permissions of the uploaded files (directories stay 0755), e.g. `"0644"`. Numbers must be real octal values (`0o644` in a
   * TS config); YAML reads `0644` as the decimal 644, so write a string there. Default: as git checks files out — 0755 for a
   * file executable by its owner locally, 0644 otherwise, 0644 for `content` — so the image does not depend on the umask of
   * the machine that baked it.
   */
  mode?: string | number | undefined;
}

const OCTAL_MODE = /^(0o?)?[0-7]{3,4}$/;

const schema = z
  .strictObject({
    source: z
      .string()
      .min(1)
      .optional()
      .describe(
        "File or directory to copy: local (relative to the bake file) for uploads, absolute on the machine for downloads. " +
          "./site copies the directory, ./site/ its contents. Set one of source, sources, content.",
      ),
    sources: z
      .array(z.string().min(1))
      .min(1)
      .optional()
      .describe("Several sources, each copied like source; destination must then be a directory (end in /)."),
    content: z.string().optional().describe("Text written to the file destination (uploads only), instead of copying a source."),
    destination: z
      .string()
      .min(1)
      .describe("Absolute path on the machine (upload) or local path relative to the bake file (download); a trailing / means into it."),
    direction: z.enum(["upload", "download"]).optional().describe('"upload" (default): local → machine; "download": machine → local.'),
    mode: z
      .union([
        z.string().regex(OCTAL_MODE, 'write the mode in octal, e.g. "0644"'),
        // Above 0o777 a number is almost always a YAML-decimal mistake (0644 → 644); special bits need the string form.
        z.number().int().min(0).max(0o777, 'this number is decimal: write the mode as a string, e.g. "0644"'),
      ])
      .optional()
      .describe(
        'Permissions of the uploaded files, e.g. "0640" (a string: YAML reads 0640 as decimal). ' +
          "Default: 0755 for a file its owner may execute, else 0644; directories 0755.",
      ),
  })
  .superRefine((opts, issues) => {
    const problem = (path: string, message: string) => issues.addIssue({ code: "custom", path: [path], message });
    const given = (["source", "sources", "content"] as const).filter((key) => opts[key] !== undefined);
    if (given.length !== 1) problem(given[1] ?? "source", "set exactly one of source, sources or content");
    const download = opts.direction === "download";
    if (download && opts.content !== undefined) problem("content", "content can only be uploaded");
    if (download && opts.mode !== undefined) problem("mode", "mode applies to uploads only");
    if (opts.content !== undefined && opts.destination.endsWith("/"))
      problem("destination", "content needs a file destination, not a directory (remove the trailing /)");
    if (opts.sources && !opts.destination.endsWith("/"))
      problem("destination", "with sources, destination must be a directory ending in /");
    const remote = download ? [opts.source, ...(opts.sources ?? [])] : [opts.destination];
    for (const path of remote)
      if (path !== undefined && !path.startsWith("/"))
        problem(download ? "source" : "destination", `${path}: paths on the machine must be absolute`);
  });

export const file = defineProvisioner<FileOptions>(() => ({
  name: "file",
  schema: schema satisfies StandardSchemaV1<unknown, FileOptions>,

  hostPaths(opts) {
    if (opts.direction === "download") return [{ path: ["destination"], value: opts.destination, access: "write" }];
    if (opts.source !== undefined) return [{ path: ["source"], value: opts.source, access: "read" }];
    return (opts.sources ?? []).map((value, index) => ({ path: ["sources", index], value, access: "read" as const }));
  },

  async fingerprint(ctx, opts) {
    const hash = createHash("sha256").update(canonicalJson(opts));
    // Downloads read the machine, whose content is not known before the bake; their options are their identity.
    if (opts.direction !== "download") {
      const sources = await Promise.all(sourceList(opts).map((source) => localSource(ctx, source)));
      // Everything is uploaded (.git and node_modules too), so nothing is excluded; modes count as they are uploaded:
      // content and the executable bit.
      if (sources.length > 0)
        hash.update(
          await hashTree(
            sources.map((source) => source.path),
            { exclude: [] },
          ),
        );
    }
    return hash.digest("hex");
  },

  async run(ctx, machine, opts) {
    if (opts.content !== undefined) return uploadContent(ctx, machine, opts.content, opts.destination, opts.mode);
    for (const source of sourceList(opts)) {
      if (opts.direction === "download") await download(ctx, machine, source, opts.destination);
      else await upload(ctx, machine, source, opts.destination, opts.mode);
    }
  },
}));

function sourceList(opts: FileOptions): string[] {
  return opts.sources ?? (opts.source === undefined ? [] : [opts.source]);
}

/**
 * Where `source` ends up under Packer's slash rules. `join`/`name` are the path functions of the destination's and the
 * source's side (POSIX on the machine, the host's locally).
 */
export function targetPath(
  source: string,
  isDirectory: boolean,
  destination: string,
  join: (a: string, b: string) => string,
  name: (path: string) => string,
): string {
  if (isDirectory) return source.endsWith("/") ? trimSlash(destination) : join(destination, name(trimSlash(source)));
  return destination.endsWith("/") ? join(destination, name(source)) : destination;
}

function trimSlash(path: string): string {
  return path.length > 1 ? path.replace(/\/+$/, "") || "/" : path;
}

export function parseMode(mode: string | number | undefined): number | undefined {
  return typeof mode === "string" ? Number.parseInt(mode.replace(/^0o/, ""), 8) : mode;
}

async function uploadContent(
  ctx: BakeContext,
  machine: Machine,
  content: string,
  destination: string,
  mode: string | number | undefined,
): Promise<void> {
  await remoteRun(ctx, machine, ["mkdir", "-p", posix.dirname(destination)]);
  await machine.upload(Readable.from([Buffer.from(content)]), destination, { mode: parseMode(mode) ?? 0o644 });
}

async function upload(
  ctx: BakeContext,
  machine: Machine,
  source: string,
  destination: string,
  mode: string | number | undefined,
): Promise<void> {
  const { path: local, info } = await localSource(ctx, source);
  const target = targetPath(source, info.isDirectory(), destination, posix.join, basename);
  const fileMode = parseMode(mode);
  if (!info.isDirectory()) {
    await remoteRun(ctx, machine, ["mkdir", "-p", posix.dirname(target)]);
    return machine.upload(local, target, { mode: fileMode ?? gitMode(info) });
  }
  await machine.upload(local, target);
  // Machine.upload keeps local modes in a tree: set the ones that differ from what the step asks for (usually none), on
  // exactly the entries we sent, not on others already there.
  const byMode = new Map<number, string[]>();
  for (const entry of await listTree(local)) {
    const wanted = entry.info.isDirectory() ? 0o755 : entry.info.isFile() ? (fileMode ?? gitMode(entry.info)) : undefined;
    if (wanted === undefined || wanted === (entry.info.mode & 0o7777)) continue;
    byMode.set(wanted, [...(byMode.get(wanted) ?? []), posix.join(target, ...entry.path.split(/[\\/]/))]);
  }
  for (const [wanted, paths] of byMode) {
    for (let at = 0; at < paths.length; at += 200)
      await remoteRun(ctx, machine, ["chmod", wanted.toString(8), ...paths.slice(at, at + 200)]);
  }
}

/** 0755 when the owner may execute the file, else 0644: the two modes git records. */
function gitMode(info: Stats): number {
  return info.mode & 0o100 ? 0o755 : 0o644;
}

async function download(ctx: BakeContext, machine: Machine, source: string, destination: string): Promise<void> {
  const probe = await machine.exec(["/bin/sh", "-c", 'if [ -d "$1" ]; then echo dir; elif [ -e "$1" ]; then echo file; fi', "sh", source], {
    signal: ctx.signal,
  });
  const kind = probe.stdout.trim();
  if (kind !== "dir" && kind !== "file")
    throw new KilnError("E_PROVISION", `file: ${source} not found on machine ${machine.id}`, {
      hint: "check the source path; downloads read from the machine",
    });
  const target = await ctx.hostPath(targetPath(source, kind === "dir", destination, join, posix.basename), "write");
  await mkdir(kind === "dir" ? target : dirname(target), { recursive: true });
  await machine.download(trimSlash(source), target);
}

async function remoteRun(ctx: BakeContext, machine: Machine, argv: string[]): Promise<void> {
  const result = await machine.exec(argv, { signal: ctx.signal });
  if (result.exitCode !== 0) {
    throw new KilnError(
      "E_PROVISION",
      `file: \`${argv.slice(0, 3).join(" ")}${argv.length > 3 ? " …" : ""}\` failed on machine ${machine.id} (exit code ${result.exitCode}): ${result.stderr.trim()}`,
    );
  }
}

/**
 * A local source, inside the project (or an allowed directory) after symlinks, and a regular file or a directory: a FIFO or a
 * device would hang the upload or never end.
 */
async function localSource(ctx: BakeContext, source: string): Promise<{ path: string; info: Stats }> {
  const path = await ctx.hostPath(source, "read");
  let info: Stats;
  try {
    info = await stat(path);
  } catch (error) {
    throw new KilnError("E_CONFIG", `file: source ${source} not found (looked at ${path})`, {
      hint: "sources are relative to the bake file's directory; check the name, or set direction: download for a path on the machine",
      cause: error,
    });
  }
  if (!info.isFile() && !info.isDirectory()) throw new KilnError("E_CONFIG", `file: source ${source} is not a regular file or a directory`);
  return { path, info };
}

/** Every entry under `root`, sorted, with paths relative to it. Symlinks are not followed (they are uploaded as links). */
async function listTree(root: string): Promise<{ path: string; info: Stats }[]> {
  const paths = (await readdir(root, { recursive: true })).sort();
  return Promise.all(paths.map(async (path) => ({ path, info: await lstat(join(root, path)) })));
}

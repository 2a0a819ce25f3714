/** What Chef is given on the machine: every path points into the staging directory. */
export interface StagedLayout {
  /** The staging directory on the machine, e.g. `/tmp/kiln-chef-Ab12Cd`. */
  staging: string;
  /** Staged copies of `cookbook_paths`, in order. */
  cookbookPaths: string[];
  rolePath?: string | undefined;
  environmentPath?: string | undefined;
  dataBagPath?: string | undefined;
  /** The staged data bag secret (0600, root). */
  secretPath?: string | undefined;
  environment?: string | undefined;
}

/**
 * A Ruby double-quoted string literal for `value`. `\` and `"` are escaped, `#` too (so `#{…}` is never interpolated), and
 * control characters are written as escapes, so the literal stays on one line. Other characters (UTF-8) are kept as they are.
 */
export function rubyString(value: string): string {
  let out = '"';
  for (const char of value) {
    const code = char.codePointAt(0) ?? 0;
    if (char === "\\" || char === '"' || char === "#") out += `\\${char}`;
    else if (char === "\n") out += "\\n";
    else if (char === "\r") out += "\\r";
    else if (char === "\t") out += "\\t";
    else if (code < 0x20 || code === 0x7f) out += `\\u{${code.toString(16)}}`;
    else out += char;
  }
  return `${out}"`;
}

function rubyValue(value: string | string[]): string {
  return typeof value === "string" ? rubyString(value) : `[${value.map(rubyString).join(", ")}]`;
}

/**
 * The `solo.rb` Kiln writes: one `key value` line per setting. Chef's caches, backups and the node file it saves in local
 * mode all go inside the staging directory, so nothing of the run (attributes included) is left in the image once the
 * directory is removed.
 */
export function soloRb(layout: StagedLayout): string {
  const at = (name: string) => `${layout.staging}/${name}`;
  const settings: [string, string | string[] | undefined][] = [
    ["cookbook_path", layout.cookbookPaths],
    ["role_path", layout.rolePath],
    ["environment_path", layout.environmentPath],
    ["data_bag_path", layout.dataBagPath],
    ["encrypted_data_bag_secret", layout.secretPath],
    ["environment", layout.environment],
    ["chef_repo_path", layout.staging],
    ["cache_path", at("cache")],
    ["file_cache_path", at("cache/files")],
    ["file_backup_path", at("cache/backup")],
    ["node_path", at("nodes")],
  ];
  const lines = settings.flatMap(([key, value]) => (value === undefined ? [] : [`${key} ${rubyValue(value)}`]));
  return `# Written by Kiln (@kiln/provisioner-chef); removed with the staging directory.\n${lines.join("\n")}\n`;
}

/** The node JSON given to `chef-solo -j`: the attributes, with `run_list` (and `chef_environment`) set by Kiln. */
export function nodeJson(runList: readonly string[], attributes: Record<string, unknown> = {}, environment?: string): string {
  const node = { ...attributes, run_list: [...runList], ...(environment === undefined ? {} : { chef_environment: environment }) };
  return `${JSON.stringify(node, null, 2)}\n`;
}

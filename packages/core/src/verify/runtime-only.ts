import type { Machine, VariableValue } from "../types.js";

export const DEFAULT_SCAN_DIRS = ["/etc", "/srv", "/opt", "/home", "/root", "/var/www", "/usr/local/etc", "/app"];

/** Per-instance state that a baked image should not carry: every machine started from it would share it. */
const PER_INSTANCE = ["/var/lib/cloud/instance", "/var/lib/cloud/instances", "/etc/ssh/ssh_host_*_key", "/etc/machine-id"];

export interface RuntimeOnly {
  paths: string[];
  variables: string[];
  scan: string[];
}

export interface RuntimeOnlyReport {
  /** Each is a reason to fail the bake. */
  problems: string[];
  warnings: string[];
}

/** Paths that exist: `$@` are the runtime-only paths. */
const EXISTING = `for p in "$@"; do if [ -e "$p" ] || [ -L "$p" ]; then echo "$p"; fi; done`;

/**
 * Regular files changed in the last $1 minutes under the other arguments, as NUL-free lines. ctime, not mtime: copies and
 * package installs can set old mtimes, but any write sets ctime.
 */
const RECENT = `m="$1"; shift
find "$@" -xdev -type f -cmin "-$m" -size -1024k 2>/dev/null || find "$@" -xdev -type f -mmin "-$m" -size -1024k 2>/dev/null
exit 0`;

/** Prints `<file>\\t<index>` for each file (one per line on stdin) holding line <index> of $KILN_SECRETS. Values never touch argv or disk. */
const SCAN = `tr '\\n' '\\0' | xargs -0 -r awk 'BEGIN { n = split(ENVIRON["KILN_SECRETS"], s, "\\n") }
{ for (i = 1; i <= n; i++) if (length(s[i]) > 0 && index($0, s[i])) { print FILENAME "\\t" i; nextfile } }'
exit 0`;

/**
 * Checks a provisioned build machine for runtime configuration that was baked in: runtime-only paths that exist, and values of
 * runtime-only or sensitive variables inside files written during provisioning under the scanned directories. Also warns about
 * per-instance state (cloud-init instance data, SSH host keys, machine-id) written during provisioning.
 */
export async function checkRuntimeOnly(
  machine: Machine,
  spec: RuntimeOnly,
  variables: Record<string, VariableValue>,
  minutesSinceLaunch: number,
  signal: AbortSignal,
): Promise<RuntimeOnlyReport> {
  const problems: string[] = [];
  const sh = (script: string, args: string[], options: { env?: Record<string, string>; stdin?: string } = {}) =>
    machine
      .exec(["/bin/sh", "-c", script, "kiln-runtime-only", ...args], { signal, user: "root", ...options })
      .then((result) => result.stdout.trim().split("\n").filter(Boolean));

  if (spec.paths.length > 0) {
    for (const path of await sh(EXISTING, spec.paths)) problems.push(`${path} exists in the image, but is runtime-only: supply it at boot`);
  }

  const watched = Object.entries(variables).filter(
    ([name, variable]) => (variable.sensitive || spec.variables.includes(name)) && variable.value.length > 0,
  );
  // A multi-line secret (a PEM key) is found by any of its lines; short lines would match by accident.
  const needles = watched.flatMap(([name, variable]) =>
    variable.value
      .split("\n")
      .filter((line) => line.trim().length >= 8 || line === variable.value)
      .map((line) => ({ name, line })),
  );
  const recent = await sh(RECENT, [String(minutesSinceLaunch + 1), ...spec.scan]);
  if (needles.length > 0 && recent.length > 0) {
    const hits = await sh(SCAN, [], {
      env: { KILN_SECRETS: needles.map((needle) => needle.line).join("\n") },
      stdin: `${recent.join("\n")}\n`,
    });
    const seen = new Set<string>();
    for (const hit of hits) {
      const [file, index] = hit.split("\t");
      const name = needles[Number(index) - 1]?.name ?? "?";
      if (seen.has(`${file}:${name}`)) continue;
      seen.add(`${file}:${name}`);
      problems.push(`${file} contains the value of variable "${name}", which must be supplied at boot, not baked`);
    }
  }

  const perInstance = await sh(RECENT, [
    String(minutesSinceLaunch + 1),
    ...PER_INSTANCE.map((path) => path.replace(/\/[^/]*\*[^/]*$/, "")),
  ]);
  const warnings = perInstance
    .filter((file) => PER_INSTANCE.some((pattern) => new RegExp(`^${pattern.replace(/\*/g, "[^/]*")}(/|$)`).test(file)))
    .map((file) => `provisioning wrote ${file}: per-instance state, shared by every machine started from this image`);
  return { problems, warnings };
}

/** The list form (`["/etc/app.env", "db_password"]`) or the object form, with defaults. */
export function normalizeRuntimeOnly(
  value: string[] | { paths?: string[] | undefined; variables?: string[] | undefined; scan?: string[] | undefined } | undefined,
): RuntimeOnly | undefined {
  if (value === undefined) return undefined;
  if (Array.isArray(value)) {
    return {
      paths: value.filter((item) => item.startsWith("/")),
      variables: value.filter((item) => !item.startsWith("/")),
      scan: DEFAULT_SCAN_DIRS,
    };
  }
  return { paths: value.paths ?? [], variables: value.variables ?? [], scan: value.scan ?? DEFAULT_SCAN_DIRS };
}

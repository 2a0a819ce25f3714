import { randomBytes } from "node:crypto";
import { KilnError, type RuntimeInputs } from "@kiln/core";

/** Written by cloud-init (and the emulator) once user data has run: a fresh instance is ready for checks after it. */
const BOOT_FINISHED = "/var/lib/cloud/instance/boot-finished";

/** POSIX single quotes. */
const quote = (value: string) => `'${value.replaceAll("'", `'\\''`)}'`;

/**
 * The user data that gives a verify instance its runtime inputs the way a deployment would: a boot-time script that writes
 * the files, puts the environment in /etc/environment (pam_env gives it to SSH logins; sudo is told to read it too) and
 * runs the boot script. The scenario's own user data goes alongside: a script runs after ours; anything else
 * (cloud-config) becomes the second part of a MIME multipart message, which cloud-init takes apart.
 */
export function runtimeUserData(runtime: RuntimeInputs): string | undefined {
  const script = runtimeScript(runtime);
  const own = runtime.userData;
  if (!script) return own;
  if (own === undefined) return script;
  if (own.startsWith("#!"))
    return `${script}\ncat > /var/lib/cloud/kiln-user-data <<'KILN_USER_DATA'\n${own}\nKILN_USER_DATA\nchmod 0700 /var/lib/cloud/kiln-user-data\n/var/lib/cloud/kiln-user-data\n`;
  return multipart([
    { type: "text/x-shellscript", content: script },
    { type: own.startsWith("#cloud-config") ? "text/cloud-config" : "text/plain", content: own },
  ]);
}

function runtimeScript(runtime: RuntimeInputs): string | undefined {
  const lines: string[] = [];
  for (const [path, file] of Object.entries(runtime.files ?? {})) {
    const mode = (file.mode ?? 0o644).toString(8);
    lines.push(
      `mkdir -p "$(dirname ${quote(path)})" && echo ${Buffer.from(file.content).toString("base64")} | base64 -d > ${quote(path)} && chmod ${mode} ${quote(path)}`,
    );
  }
  const env = Object.entries(runtime.env ?? {});
  for (const [name, value] of env) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new KilnError("E_CONFIG", `runtime env name "${name}" is not a valid variable name`);
    if (/["\n]/.test(value))
      throw new KilnError("E_CONFIG", `runtime env ${name}: /etc/environment cannot hold a value with a double quote or a newline`, {
        hint: "put such values in runtime files instead",
      });
    lines.push(`echo ${quote(`${name}="${value}"`)} >> /etc/environment`);
  }
  // sudo resets the environment, and Kiln's checks run as root through sudo: let them see it as a login does.
  if (env.length > 0)
    lines.push(
      "if [ -d /etc/sudoers.d ]; then echo 'Defaults env_file=/etc/environment' > /etc/sudoers.d/kiln-runtime-env && chmod 0440 /etc/sudoers.d/kiln-runtime-env; fi",
    );
  if (runtime.bootScript) {
    const exports = env.map(([name, value]) => `export ${name}=${quote(value)}`).join("\n");
    lines.push(
      `cat > /var/lib/cloud/kiln-boot.sh <<'KILN_BOOT_SCRIPT'\n${exports}\n${runtime.bootScript}\nKILN_BOOT_SCRIPT`,
      "sh /var/lib/cloud/kiln-boot.sh",
    );
  }
  if (lines.length === 0) return undefined;
  return ["#!/bin/sh", "# Kiln runtime inputs: files, environment, boot script.", "set -e", "mkdir -p /var/lib/cloud", ...lines, ""].join(
    "\n",
  );
}

function multipart(parts: Array<{ type: string; content: string }>): string {
  const boundary = `kiln-${randomBytes(8).toString("hex")}`;
  const body = parts
    .map((part) => `--${boundary}\nContent-Type: ${part.type}; charset="utf-8"\nMIME-Version: 1.0\n\n${part.content}\n`)
    .join("");
  return `Content-Type: multipart/mixed; boundary="${boundary}"\nMIME-Version: 1.0\n\n${body}--${boundary}--\n`;
}

/** Where cloud-init (and the emulator's runner) lists what went wrong while user data ran. */
const RESULT_FILE = "/var/lib/cloud/data/result.json";

/**
 * Shell that waits for user data to finish (cloud-init's own wait when present, else boot-finished), failing after `seconds`,
 * then prints cloud-init's result file, whose `v1.errors` say whether it went well.
 */
export function waitForBootScript(seconds: number): string {
  return [
    "if command -v cloud-init >/dev/null 2>&1; then timeout " + seconds + " cloud-init status --wait >/dev/null; fi",
    // Checked every 0.1 s (a second per check was up to a second of idle verify); `sleep 1` where fractions are not understood.
    `end=$(($(date +%s) + ${seconds})); while [ ! -e ${BOOT_FINISHED} ]; do [ "$(date +%s)" -ge "$end" ] && { echo "user data did not finish within ${seconds}s" >&2; exit 1; }; sleep 0.1 2>/dev/null || sleep 1; done`,
    `cat ${RESULT_FILE} 2>/dev/null || true`,
  ].join("\n");
}

/** The errors cloud-init's result file lists (none when there is no file: an image without cloud-init that ran no user data). */
export function userDataErrors(resultJson: string): string[] {
  if (!resultJson.trim()) return [];
  try {
    const errors = (JSON.parse(resultJson) as { v1?: { errors?: unknown[] } }).v1?.errors ?? [];
    return errors.map((error) => (typeof error === "string" ? error : JSON.stringify(error)));
  } catch {
    return [`unreadable ${RESULT_FILE}: ${resultJson.slice(0, 200)}`];
  }
}

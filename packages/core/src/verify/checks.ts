import { connect } from "node:net";
import type { Check, CheckKind } from "../config/verify-schema.js";
import type { Machine } from "../types.js";
import { matchesPattern } from "./pattern.js";
import { FILE_PROBE, HTTP_PROBE, PACKAGE_PROBE, PROCESS_PROBE, SERVICE_PROBE, SOCKETS_PROBE, USER_PROBE } from "./probes.js";

/** The outcome of one check: for failures, what was expected and what was found. */
export interface CheckOutcome {
  ok: boolean;
  expected?: string;
  actual?: string;
}

export interface CheckEnv {
  machine: Machine;
  signal: AbortSignal;
  /** Whether the driver publishes ports to the host (then http checks come from the host by default). */
  hostPorts: boolean;
}

const pass: CheckOutcome = { ok: true };
const fail = (expected: string, actual: string): CheckOutcome => ({ ok: false, expected, actual });

async function probe(env: CheckEnv, script: string, ...args: string[]): Promise<string> {
  const result = await env.machine.exec(["/bin/sh", "-c", script, "kiln-probe", ...args], { signal: env.signal, user: "root" });
  return result.stdout;
}

function textProblem(text: string, what: string, contains: string | undefined, matches: string | undefined): CheckOutcome | undefined {
  if (contains !== undefined && !text.includes(contains)) return fail(`${what} containing "${contains}"`, excerpt(text));
  if (matches !== undefined && !matchesPattern(matches, text)) return fail(`${what} matching /${matches}/`, excerpt(text));
  return undefined;
}

export function excerpt(text: string, lines = 5): string {
  const trimmed = text.trimEnd();
  if (!trimmed) return "(empty)";
  const all = trimmed.split("\n");
  return (all.length > lines ? ["…", ...all.slice(-lines)] : all).join("\n").slice(-600);
}

async function commandCheck(env: CheckEnv, check: CheckOf<"command">): Promise<CheckOutcome> {
  const spec = typeof check.command === "string" ? { run: check.command } : check.command;
  const result = await env.machine.exec(spec.run, { signal: env.signal, ...("user" in spec && spec.user ? { user: spec.user } : {}) });
  const wanted = "exit_code" in spec && spec.exit_code !== undefined ? spec.exit_code : 0;
  if (result.exitCode !== wanted)
    return fail(`exit code ${wanted}`, `exit code ${result.exitCode}: ${excerpt(result.stderr || result.stdout)}`);
  if (!("run" in spec) || typeof check.command === "string") return pass;
  const c = check.command;
  return (
    textProblem(result.stdout, "stdout", c.stdout_contains, c.stdout_matches) ??
    textProblem(result.stderr, "stderr", c.stderr_contains, c.stderr_matches) ??
    pass
  );
}

async function fileCheck(env: CheckEnv, check: CheckOf<"file">): Promise<CheckOutcome> {
  const spec = typeof check.file === "string" ? { path: check.file } : check.file;
  const output = await probe(env, FILE_PROBE, spec.path);
  const missing = output.startsWith("MISSING");
  const mustExist = "exists" in spec ? spec.exists !== false : true;
  if (!mustExist) return missing ? pass : fail(`${spec.path} absent`, `${spec.path} exists`);
  if (missing) return fail(`${spec.path} exists`, "missing");
  const newline = output.indexOf("\n");
  const [mode = "", owner = "", group = ""] = output.slice(0, newline).split(" ");
  const content = output.slice(newline + 1);
  if ("mode" in spec && spec.mode && Number.parseInt(spec.mode, 8) !== Number.parseInt(mode, 8))
    return fail(`mode ${spec.mode}`, `mode ${mode.padStart(4, "0")}`);
  if ("owner" in spec && spec.owner) {
    const [wantUser, wantGroup] = spec.owner.split(":");
    if (owner !== wantUser || (wantGroup !== undefined && group !== wantGroup))
      return fail(`owner ${spec.owner}`, `owner ${owner}:${group}`);
  }
  return ("contains" in spec || "matches" in spec ? textProblem(content, spec.path, spec.contains, spec.matches) : undefined) ?? pass;
}

/** Listening sockets of the machine's network namespace, from /proc/net: no ss or netstat needed. */
async function listeningPorts(env: CheckEnv, protocol: "tcp" | "udp"): Promise<Set<number>> {
  const lines = (await probe(env, SOCKETS_PROBE, protocol)).trim().split("\n");
  const listening = protocol === "tcp" ? "0A" : "07";
  return new Set(
    lines.filter((line) => line.split(" ")[1] === listening).map((line) => Number.parseInt(line.split(" ")[0]?.split(":")[1] ?? "", 16)),
  );
}

/**
 * Whether a TCP connection to host:port stays open. A port proxy (Docker's, for one) accepts every connection and closes
 * it when nothing listens behind it, so a bare connect proves nothing: the connection must survive a short while.
 */
function canConnect(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const finish = (problem: string | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(problem);
    };
    // A plain (ref'd) timer: it must keep the process alive while we wait.
    let timer = setTimeout(() => finish("timed out connecting"), 3000);
    socket.once("connect", () => {
      clearTimeout(timer);
      timer = setTimeout(() => finish(undefined), 300);
    });
    socket.once("close", () => finish("connection closed by the other side (nothing listening behind the published port?)"));
    socket.once("error", (error) => finish(error.message));
  });
}

/** An abort signal for `ms` from now, on a ref'd timer (AbortSignal.timeout's timer would let the process exit mid-request). */
function deadline(ms: number, signal: AbortSignal): { signal: AbortSignal; clear: () => void } {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error(`no answer within ${ms / 1000}s`)), ms);
  const forward = () => controller.abort(signal.reason);
  signal.addEventListener("abort", forward, { once: true });
  return {
    signal: controller.signal,
    clear: () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", forward);
    },
  };
}

async function portCheck(env: CheckEnv, check: CheckOf<"port">): Promise<CheckOutcome> {
  const spec = typeof check.port === "number" ? { port: check.port } : check.port;
  const protocol = ("protocol" in spec && spec.protocol) || "tcp";
  const open = (await listeningPorts(env, protocol)).has(spec.port);
  const wantOpen = !("listening" in spec) || spec.listening !== false;
  if (open !== wantOpen)
    return fail(
      `${protocol} port ${spec.port} ${wantOpen ? "listening" : "closed"}`,
      `${open ? "listening" : "nothing listening"} (listening: ${[...(await listeningPorts(env, protocol))].sort((a, b) => a - b).join(", ") || "none"})`,
    );
  if (wantOpen && "from_host" in spec && spec.from_host) {
    const address = await env.machine.hostAddress?.(spec.port);
    if (!address) return fail(`port ${spec.port} reachable from the host`, "this driver does not publish ports to the host");
    const problem = await canConnect(address.host, address.port);
    if (problem) return fail(`port ${spec.port} reachable from the host at ${address.host}:${address.port}`, problem);
  }
  return pass;
}

async function httpCheck(env: CheckEnv, check: CheckOf<"http">): Promise<CheckOutcome> {
  const spec = check.http;
  const path = spec.path ?? "/";
  const wantStatus = spec.status ?? 200;
  const from = spec.from ?? (env.hostPorts ? "host" : "machine");
  let status: number;
  let body: string;
  if (from === "host") {
    const address = await env.machine.hostAddress?.(spec.port);
    if (!address)
      return fail(`GET :${spec.port}${path} from the host`, "this driver does not publish ports to the host; use from: machine");
    // Connect first: through a port proxy, a request to a port nobody listens on yet can hang instead of failing.
    const unreachable = await canConnect(address.host, address.port);
    if (unreachable) return fail(`HTTP ${wantStatus} from :${spec.port}${path}`, unreachable);
    const limit = deadline(5000, env.signal);
    try {
      const response = await fetch(`http://${address.host}:${address.port}${path}`, { signal: limit.signal });
      status = response.status;
      body = await response.text();
    } catch (error) {
      return fail(
        `HTTP ${wantStatus} from :${spec.port}${path}`,
        `request failed: ${(error as Error).cause instanceof Error ? ((error as Error).cause as Error).message : (error as Error).message}`,
      );
    } finally {
      limit.clear();
    }
  } else {
    const output = await probe(env, HTTP_PROBE, `http://127.0.0.1:${spec.port}${path}`);
    if (output.startsWith("KILN_NO_CLIENT"))
      return fail(`HTTP ${wantStatus} from :${spec.port}${path}`, "no HTTP client in the image (curl, python3 or wget); use from: host");
    const marker = output.lastIndexOf("KILN_STATUS:");
    if (marker < 0) return fail(`HTTP ${wantStatus} from :${spec.port}${path}`, "request failed (connection refused?)");
    status = Number(output.slice(marker + "KILN_STATUS:".length).trim()) || 0;
    body = output.slice(0, marker).replace(/\n$/, "");
  }
  if (status !== wantStatus)
    return fail(`HTTP ${wantStatus} from :${spec.port}${path}`, `HTTP ${status || "no response"}: ${excerpt(body, 3)}`);
  return textProblem(body, "body", spec.body_contains, spec.body_matches) ?? pass;
}

async function processCheck(env: CheckEnv, name: string, wantRunning: boolean): Promise<CheckOutcome> {
  const found = (await probe(env, PROCESS_PROBE, name)).trim();
  if (Boolean(found) === wantRunning) return pass;
  return fail(
    `process "${name}" ${wantRunning ? "running" : "not running"}`,
    found
      ? `running as pid ${found
          .split("\n")
          .map((line) => line.split(" ")[0])
          .join(", ")}`
      : "not running",
  );
}

async function serviceCheck(env: CheckEnv, check: CheckOf<"service">): Promise<CheckOutcome> {
  const spec = typeof check.service === "string" ? { name: check.service } : check.service;
  const wantRunning = !("running" in spec) || spec.running !== false;
  const [manager, state = ""] = (await probe(env, SERVICE_PROBE, spec.name)).trim().split(" ");
  if (manager === "systemd" || manager === "init") {
    const running = manager === "systemd" ? state === "active" : state === "0";
    if (running === wantRunning) return pass;
    return fail(
      `service ${spec.name} ${wantRunning ? "active" : "inactive"} (${manager})`,
      manager === "systemd" ? state || "unknown" : `status exit code ${state}`,
    );
  }
  // No service manager runs in most containers: a service is then its process.
  return processCheck(env, spec.name, wantRunning);
}

async function packageCheck(env: CheckEnv, check: CheckOf<"package">): Promise<CheckOutcome> {
  const spec = typeof check.package === "string" ? { name: check.package } : check.package;
  const [manager, state, ...versionParts] = (await probe(env, PACKAGE_PROBE, spec.name)).trim().split(" ");
  if (manager === "none") return fail(`package ${spec.name}`, "no known package manager (dpkg, rpm, apk) in the image");
  const installed = state === "installed";
  const version = versionParts.join(" ");
  const wantInstalled = !("installed" in spec) || spec.installed !== false;
  if (installed !== wantInstalled)
    return fail(
      `package ${spec.name} ${wantInstalled ? "installed" : "not installed"}`,
      installed ? `installed ${version}` : "not installed",
    );
  if (wantInstalled && "version" in spec && spec.version && !globMatch(spec.version, version))
    return fail(`package ${spec.name} ${spec.version}`, `${spec.name} ${version}`);
  return pass;
}

async function userCheck(env: CheckEnv, check: CheckOf<"user">): Promise<CheckOutcome> {
  const spec = typeof check.user === "string" ? { name: check.user } : check.user;
  const [entry = "", groupLine = ""] = (await probe(env, USER_PROBE, spec.name)).split("\n");
  const fields = entry.split(":");
  const exists = fields[0] === spec.name;
  const wantExists = !("exists" in spec) || spec.exists !== false;
  if (exists !== wantExists) return fail(`user ${spec.name} ${wantExists ? "exists" : "absent"}`, exists ? entry : "no such user");
  if (!exists) return pass;
  const [, , uid, , , home, shell] = fields;
  const groups = groupLine
    .replace(/^groups:\s*/, "")
    .trim()
    .split(/\s+/)
    .filter(Boolean);
  if ("uid" in spec && spec.uid !== undefined && Number(uid) !== spec.uid) return fail(`uid ${spec.uid}`, `uid ${uid}`);
  if ("home" in spec && spec.home !== undefined && home !== spec.home) return fail(`home ${spec.home}`, `home ${home}`);
  if ("shell" in spec && spec.shell !== undefined && shell !== spec.shell) return fail(`shell ${spec.shell}`, `shell ${shell}`);
  const missing = ("groups" in spec ? (spec.groups ?? []) : []).filter((group) => !groups.includes(group));
  if (missing.length) return fail(`member of ${missing.join(", ")}`, `groups: ${groups.join(", ") || "none"}`);
  return pass;
}

/** `1.22.*` against a version; through RE2, so no pattern of stars can take exponential time. */
function globMatch(pattern: string, text: string): boolean {
  const regex = `^${pattern
    .split("*")
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
    .join(".*")}$`;
  return matchesPattern(regex, text);
}

type CheckOf<K extends CheckKind> = Extract<Check, Record<K, unknown>>;

const HANDLERS: { [K in CheckKind]: (env: CheckEnv, check: CheckOf<K>) => Promise<CheckOutcome> } = {
  command: commandCheck,
  file: fileCheck,
  port: portCheck,
  http: httpCheck,
  process: (env, { process }) =>
    typeof process === "string" ? processCheck(env, process, true) : processCheck(env, process.name, process.running !== false),
  service: serviceCheck,
  package: packageCheck,
  user: userCheck,
};

/** Runs one check once. */
export function runCheckOnce(env: CheckEnv, kind: CheckKind, check: Check): Promise<CheckOutcome> {
  return (HANDLERS[kind] as (env: CheckEnv, check: Check) => Promise<CheckOutcome>)(env, check);
}

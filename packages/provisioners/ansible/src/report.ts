/**
 * Reads `ansible-playbook`'s output with the `ansible.posix.jsonl` callback (one JSON event per line) and turns it into what
 * a person wants to see: a line per task and host with its status, the failed tasks with Ansible's message, and the totals.
 */

export type TaskStatus = "ok" | "changed" | "failed" | "skipped" | "unreachable";

export interface TaskFailure {
  task: string;
  host: string;
  message: string;
  unreachable: boolean;
}

export interface HostStats {
  ok: number;
  changed: number;
  failures: number;
  unreachable: number;
  skipped: number;
  rescued: number;
  ignored: number;
}

export interface PlaybookReport {
  /** Feeds one line of stdout; returns the lines to show for it (none for events that only start something). */
  line(text: string): string[];
  failures(): TaskFailure[];
  stats(): Record<string, HostStats> | undefined;
}

type Result = Record<string, unknown>;

interface RunnerEvent {
  _event: string;
  task?: { name?: string };
  play?: { name?: string };
  hosts?: Record<string, Result>;
  stats?: Record<string, HostStats>;
}

const RESULT_EVENTS: Record<string, TaskStatus> = {
  v2_runner_on_ok: "ok",
  v2_runner_on_failed: "failed",
  v2_runner_on_skipped: "skipped",
  v2_runner_on_unreachable: "unreachable",
};

export function playbookReport(): PlaybookReport {
  const failures: TaskFailure[] = [];
  let stats: Record<string, HostStats> | undefined;
  return {
    line(text) {
      const event = parseEvent(text);
      if (!event) return text.trim() === "" ? [] : [text];
      if (event._event === "v2_playbook_on_play_start") return [`PLAY ${event.play?.name || "(unnamed)"}`];
      if (event._event === "v2_playbook_on_stats") {
        // The totals are Kiln's summary line for the step, logged by the provisioner.
        stats = event.stats;
        return [];
      }
      const kind = RESULT_EVENTS[event._event];
      if (!kind) return [];
      const task = event.task?.name || "(unnamed task)";
      return Object.entries(event.hosts ?? {}).flatMap(([host, result]) => {
        const status = kind === "ok" && result.changed === true ? "changed" : kind;
        if (status === "failed" || status === "unreachable") {
          const ignored = result.ignore_errors === true;
          if (!ignored) failures.push({ task, host, message: failureMessage(result), unreachable: status === "unreachable" });
        }
        const items = Array.isArray(result.results) ? ` (${result.results.length} items)` : "";
        return [`${status.padEnd(9)} ${host} | ${task}${items}`, ...debugMessage(result)];
      });
    },
    failures: () => failures,
    stats: () => stats,
  };
}

function parseEvent(text: string): RunnerEvent | undefined {
  if (!text.startsWith("{")) return undefined;
  try {
    const parsed = JSON.parse(text) as unknown;
    return typeof parsed === "object" && parsed !== null && typeof (parsed as RunnerEvent)._event === "string"
      ? (parsed as RunnerEvent)
      : undefined;
  } catch {
    return undefined;
  }
}

export function summarize(s: HostStats): string {
  return `ok=${s.ok} changed=${s.changed} failed=${s.failures} unreachable=${s.unreachable} skipped=${s.skipped} rescued=${s.rescued} ignored=${s.ignored}`;
}

/** Ansible's own words for a failure: `msg`, else the module's stderr, else the failing items' messages. */
export function failureMessage(result: Result): string {
  const parts: string[] = [];
  const add = (value: unknown) => {
    if (typeof value === "string" && value.trim() !== "" && !parts.includes(value.trim())) parts.push(value.trim());
  };
  add(result.msg);
  add(result.stderr);
  add(result.module_stderr);
  if (Array.isArray(result.results)) {
    for (const item of result.results as Result[]) if (item?.failed === true) add(item.msg ?? item.stderr);
  }
  const text = parts.join("\n") || "failed (Ansible gave no message)";
  return text.length > 2000 ? `${text.slice(0, 2000)}…` : text;
}

/** What a `debug` task says is the point of running it: shown under its line. */
function debugMessage(result: Result): string[] {
  if (!/(^|\.)debug$/.test(String(result.action)) || result.failed === true) return [];
  const said =
    "msg" in result
      ? result.msg
      : Object.entries(result).find(([key]) => !["action", "changed", "_ansible_verbose_always", "_ansible_no_log"].includes(key))?.[1];
  const text = typeof said === "string" ? said : JSON.stringify(said, null, 2);
  return (text ?? "").split("\n").map((line) => `    ${line}`);
}

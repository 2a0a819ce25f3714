import { describe, expect, it } from "vitest";
import { failureMessage, playbookReport } from "./report.js";

const event = (name: string, task: string, hosts: Record<string, unknown>) => JSON.stringify({ _event: name, task: { name: task }, hosts });

describe("playbookReport", () => {
  it("shows a line per task and host with its status, and keeps failures with Ansible's message", () => {
    const report = playbookReport();
    expect(report.line(JSON.stringify({ _event: "v2_playbook_on_play_start", play: { name: "web" } }))).toEqual(["PLAY web"]);
    expect(report.line(event("v2_runner_on_start", "install", { web: {} }))).toEqual([]);
    expect(report.line(event("v2_runner_on_ok", "install", { web: { changed: true } }))).toEqual(["changed   web | install"]);
    expect(report.line(event("v2_runner_on_ok", "check", { web: { changed: false } }))).toEqual(["ok        web | check"]);
    expect(report.line(event("v2_runner_on_skipped", "skip", { web: { skipped: true } }))).toEqual(["skipped   web | skip"]);
    expect(report.line(event("v2_runner_on_ok", "say", { web: { action: "ansible.builtin.debug", msg: "a\nb" } }))).toEqual([
      "ok        web | say",
      "    a",
      "    b",
    ]);
    expect(
      report.line(
        event("v2_runner_on_failed", "loop", {
          web: { failed: true, msg: "One or more items failed", results: [{ failed: true, msg: "no such package" }, { failed: false }] },
        }),
      ),
    ).toEqual(["failed    web | loop (2 items)"]);
    expect(
      report.line(event("v2_runner_on_unreachable", "connect", { db: { unreachable: true, msg: "ssh: connection refused" } })),
    ).toEqual(["unreachable db | connect"]);
    expect(report.failures()).toEqual([
      { task: "loop", host: "web", message: "One or more items failed\nno such package", unreachable: false },
      { task: "connect", host: "db", message: "ssh: connection refused", unreachable: true },
    ]);
  });

  it("passes other lines through and keeps the totals", () => {
    const report = playbookReport();
    expect(report.line("[WARNING]: something")).toEqual(["[WARNING]: something"]);
    expect(report.line("{not json")).toEqual(["{not json"]);
    const stats = { web: { ok: 3, changed: 1, failures: 0, unreachable: 0, skipped: 0, rescued: 0, ignored: 0 } };
    expect(report.line(JSON.stringify({ _event: "v2_playbook_on_stats", stats }))).toEqual([]);
    expect(report.stats()).toEqual(stats);
  });

  it("uses the module's stderr when there is no msg", () => {
    expect(failureMessage({ module_stderr: "/bin/sh: 1: sudo: not found\n" })).toBe("/bin/sh: 1: sudo: not found");
    expect(failureMessage({})).toBe("failed (Ansible gave no message)");
  });
});

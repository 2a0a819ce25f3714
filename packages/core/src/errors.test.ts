import { describe, expect, it } from "vitest";
import { exitCodeFor, formatDiagnostic, isKilnError, KilnError, toKilnError } from "./errors.js";

describe("formatDiagnostic", () => {
  it("writes file:line:col: path: message — hint", () => {
    const text = formatDiagnostic({
      file: "kiln.yaml",
      line: 12,
      column: 7,
      path: "images.web.provision[1].ansible.playbook",
      message: "file ./web.yml not found",
      hint: "check the path",
    });
    expect(text).toBe("kiln.yaml:12:7: images.web.provision[1].ansible.playbook: file ./web.yml not found — check the path");
  });

  it("leaves out the hint when there is none", () => {
    expect(formatDiagnostic({ file: "kiln.yaml", line: 3, column: 1, path: "colour", message: 'unknown key "colour"' })).toBe(
      'kiln.yaml:3:1: colour: unknown key "colour"',
    );
  });

  it("uses column 1 when only the line is known", () => {
    expect(formatDiagnostic({ file: "kiln.yaml", line: 3, path: "images", message: "no images" })).toBe("kiln.yaml:3:1: images: no images");
  });

  it("names only the file when the position is unknown (TypeScript configs)", () => {
    expect(formatDiagnostic({ file: "kiln.config.ts", path: "images.web.driver", message: "required" })).toBe(
      "kiln.config.ts: images.web.driver: required",
    );
  });

  it("leaves out an empty path", () => {
    expect(formatDiagnostic({ file: "kiln.yaml", line: 4, column: 13, path: "", message: "not valid YAML" })).toBe(
      "kiln.yaml:4:13: not valid YAML",
    );
  });
});

describe("KilnError exit codes", () => {
  it.each([
    ["E_CONFIG", 2],
    ["E_VARIABLE", 2],
    ["E_DRIVER_NOT_FOUND", 2],
    ["E_PROVISIONER_NOT_FOUND", 2],
    ["E_PLUGIN_SHAPE", 2],
    ["E_PROVISION", 1],
    ["E_CLEANUP", 1],
    ["E_INTERRUPTED", 130],
  ] as const)("maps %s to exit code %i", (code, exitCode) => {
    expect(exitCodeFor(code)).toBe(exitCode);
    expect(new KilnError(code, "x").exitCode).toBe(exitCode);
  });

  it("keeps an explicit exit code", () => {
    expect(new KilnError("E_PROVISION", "x", { exitCode: 3 }).exitCode).toBe(3);
  });
});

describe("toKilnError", () => {
  it("returns a KilnError unchanged", () => {
    const original = new KilnError("E_SOURCE", "image not found");
    expect(toKilnError(original, "E_INTERNAL", "wrapped")).toBe(original);
  });

  it("wraps another error with the given code and a prefix, keeping the cause", () => {
    const cause = new Error("connection reset");
    const error = toKilnError(cause, "E_PROVISION", "provision[0] shell failed");
    expect(isKilnError(error)).toBe(true);
    expect(error).toMatchObject({ code: "E_PROVISION", message: "provision[0] shell failed: connection reset", cause, exitCode: 1 });
  });

  it("wraps a thrown string", () => {
    expect(toKilnError("boom", "E_INTERNAL").message).toBe("boom");
  });
});

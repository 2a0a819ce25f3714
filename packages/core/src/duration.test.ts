import { describe, expect, it } from "vitest";
import { formatDuration, isDurationString, parseDuration } from "./duration.js";
import { KilnError } from "./errors.js";

describe("parseDuration", () => {
  it.each([
    ["500ms", 500],
    ["45s", 45_000],
    ["5m", 300_000],
    ["2h", 7_200_000],
    ["1h30m", 5_400_000],
    ["1m30s500ms", 90_500],
    ["1.5s", 1_500],
  ])("reads %s as %i ms", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it("reads a number as seconds", () => {
    expect(parseDuration(90)).toBe(90_000);
  });

  it.each(["", "30", "5 m", "ten seconds", "5d", "-5s"])("refuses %j with a hint showing valid forms", (text) => {
    let error: unknown;
    try {
      parseDuration(text);
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(KilnError);
    expect(error).toMatchObject({ code: "E_CONFIG", message: `"${text}" is not a duration`, hint: 'write e.g. "30s", "5m" or "1h30m"' });
  });
});

describe("isDurationString", () => {
  it("accepts unit-suffixed durations and refuses bare numbers", () => {
    expect([isDurationString("90s"), isDurationString("1h30m"), isDurationString("90")]).toEqual([true, true, false]);
  });
});

describe("formatDuration", () => {
  it.each([
    [0, "0ms"],
    [250, "250ms"],
    [999.4, "999ms"],
    [1_000, "1.0s"],
    [1_540, "1.5s"],
    [59_000, "59.0s"],
    [60_000, "1m0s"],
    [90_000, "1m30s"],
    [3_723_000, "62m3s"],
  ])("shows %i ms as %s", (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it("carries rounded-up seconds into the minutes instead of showing 60s", () => {
    expect(formatDuration(119_500)).toBe("2m0s");
  });
});

import { z } from "zod";
import { isDurationString, parseDuration } from "../duration.js";

/** Node's timers hold at most 2^31 - 1 ms (24.8 days); a longer one fires at once. */
export const MAX_DURATION_MS = 2 ** 31 - 1;

const written = z.union([z.number(), z.string().refine(isDurationString, { message: 'expected a duration like "30s" or "5m"' })]);

/** A duration of `min` ms or more, a whole number of milliseconds, at most {@link MAX_DURATION_MS}. */
const durationFrom = (min: number) =>
  written.superRefine((value, context) => {
    if (typeof value === "string" && !isDurationString(value)) return;
    const ms = parseDuration(value);
    if (!Number.isFinite(ms) || ms > MAX_DURATION_MS) {
      context.addIssue({ code: "custom", message: "at most 24 days (what a timer can hold)" });
    } else if (ms < min) {
      context.addIssue({ code: "custom", message: min > 0 ? "must be longer than 0" : "must not be negative" });
    } else if (!Number.isInteger(ms)) {
      context.addIssue({ code: "custom", message: "whole milliseconds only" });
    }
  });

/** Waits and pauses: 0 or more. */
export const durationSchema = durationFrom(0).describe('Seconds, or a duration such as "30s", "5m", "1h30m".');

/** Timeouts and deadlines: more than 0 (a timeout of 0 would fail everything at once). */
export const timeoutSchema = durationFrom(1).describe('Seconds, or a duration such as "30s", "5m", "1h30m".');

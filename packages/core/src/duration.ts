import { KilnError } from "./errors.js";

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
const DURATION = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$/;

/** True for `90s`, `1h30m`, `500ms`. Bare numbers are seconds and handled by {@link parseDuration}. */
export function isDurationString(text: string): boolean {
  return DURATION.test(text);
}

/** Parses a Go-style duration (`1h30m`, `45s`) or a number of seconds into milliseconds. */
export function parseDuration(value: string | number): number {
  if (typeof value === "number") return value * 1000;
  if (!isDurationString(value)) {
    throw new KilnError("E_CONFIG", `"${value}" is not a duration`, { hint: 'write e.g. "30s", "5m" or "1h30m"' });
  }
  let total = 0;
  for (const [, amount, unit] of value.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    total += Number(amount) * UNIT_MS[unit as keyof typeof UNIT_MS];
  }
  return total;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  // Below 59.95 s, one decimal cannot round up to "60.0s"; above it, whole seconds cannot read "1m60s".
  if (ms < 59_950) return `${(ms / 1000).toFixed(1)}s`;
  const seconds = Math.round(ms / 1000);
  return `${Math.floor(seconds / 60)}m${seconds % 60}s`;
}

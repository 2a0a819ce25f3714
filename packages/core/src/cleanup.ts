import { untilAborted } from "./abort.js";
import { formatDuration } from "./duration.js";
import { KilnError } from "./errors.js";
import { retry } from "./retry.js";
import type { Cleanup, DeferOptions } from "./types.js";

interface Entry extends DeferOptions {
  cleanup: Cleanup;
}

export interface CleanupFailure {
  resource: string;
  error: string;
  manualCommand?: string;
}

export interface CleanupSettings {
  /** Default time a cleanup may take, retries included. */
  timeoutMs: number;
  /** Attempts after the first. */
  retries: number;
}

/** Two minutes: long enough for a cloud instance to terminate, short enough that a refused call does not hold the bake. */
export const DEFAULT_CLEANUP_TIMEOUT_MS = 120_000;

/**
 * Cleanups registered while a bake creates things. Unwinding runs them in reverse order, each retried with backoff within
 * its timeout; every entry runs even when an earlier one fails, and the failures are returned with the resource and a
 * command to remove it. A cleanup registered once unwinding has finished (by a step that returned after it was abandoned,
 * e.g. a create call answered after Ctrl-C) runs at once; `settled()` waits for those.
 */
export class CleanupStack {
  private entries: Entry[] = [];
  private outcome: "success" | "failure" | undefined;
  private readonly late: Promise<CleanupFailure | undefined>[] = [];
  private readonly settings: CleanupSettings;

  constructor(settings: Partial<CleanupSettings> = {}) {
    this.settings = { timeoutMs: DEFAULT_CLEANUP_TIMEOUT_MS, retries: 3, ...settings };
  }

  defer(cleanup: Cleanup, options: DeferOptions = {}): void {
    const entry = { cleanup, ...options };
    if (this.outcome === undefined) {
      this.entries.push(entry);
      return;
    }
    // The stack has already unwound: nothing else would ever run this.
    const running = this.runEntry(entry, this.outcome);
    this.late.push(running);
  }

  /** Resources registered and not yet cleaned up, for the "left behind" report of a forced exit. */
  pending(): Pick<CleanupFailure, "resource" | "manualCommand">[] {
    return this.entries.map(describe);
  }

  async unwind(outcome: "success" | "failure"): Promise<CleanupFailure[]> {
    const failures: CleanupFailure[] = [];
    // Entries registered while unwinding (a cleanup that creates nothing new, or a late step) join the loop.
    for (let entry = this.entries.pop(); entry; entry = this.entries.pop()) {
      const failure = await this.runEntry(entry, outcome);
      if (failure) failures.push(failure);
    }
    this.outcome = outcome;
    return failures;
  }

  /** Waits for the cleanups registered after unwinding; returns those that failed (each at most once). */
  async settled(): Promise<CleanupFailure[]> {
    const running = this.late.splice(0);
    return (await Promise.all(running)).filter((failure): failure is CleanupFailure => failure !== undefined);
  }

  private async runEntry(entry: Entry, outcome: "success" | "failure"): Promise<CleanupFailure | undefined> {
    if (entry.when === "failure" && outcome === "success") return undefined;
    const timeoutMs = entry.timeoutMs ?? this.settings.timeoutMs;
    const deadline = new AbortController();
    const timer = setTimeout(
      () => deadline.abort(new KilnError("E_CLEANUP", `did not finish within ${formatDuration(timeoutMs)}`)),
      timeoutMs,
    );
    let lastError: unknown;
    try {
      const attempts = retry(async () => void (await entry.cleanup(deadline.signal)), {
        retries: this.settings.retries,
        minDelayMs: 200,
        maxDelayMs: 2000,
        signal: deadline.signal,
        onRetry: (error) => {
          lastError = error;
        },
      });
      // A cleanup that ignores its signal is abandoned at the deadline rather than holding the bake.
      await untilAborted(attempts, deadline.signal);
      return undefined;
    } catch (error) {
      const message = (thrown: unknown) => (thrown instanceof Error ? thrown.message : String(thrown));
      const text = deadline.signal.aborted
        ? `${message(deadline.signal.reason)}${lastError === undefined ? "" : ` (last error: ${message(lastError)})`}`
        : message(error);
      return { ...describe(entry), error: text };
    } finally {
      clearTimeout(timer);
    }
  }
}

function describe(entry: Entry): Pick<CleanupFailure, "resource" | "manualCommand"> {
  const manualCommand = typeof entry.manualCommand === "function" ? entry.manualCommand() : entry.manualCommand;
  return { resource: entry.resource ?? "unnamed resource", ...(manualCommand ? { manualCommand } : {}) };
}

import { retry } from "./retry.js";
import type { DeferOptions } from "./types.js";

interface Entry extends DeferOptions {
  cleanup: () => PromiseLike<void> | void;
}

export interface CleanupFailure {
  resource: string;
  error: string;
  manualCommand?: string;
}

/**
 * Cleanups registered while a bake creates things. Unwinding runs them in reverse order, each retried with backoff; every
 * entry runs even when an earlier one fails, and the failures are returned with the resource and a command to remove it.
 */
export class CleanupStack {
  private entries: Entry[] = [];

  defer(cleanup: () => PromiseLike<void> | void, options: DeferOptions = {}): void {
    this.entries.push({ cleanup, ...options });
  }

  /** Resources registered and not yet cleaned up, for the "left behind" report of a forced exit. */
  pending(): Pick<CleanupFailure, "resource" | "manualCommand">[] {
    return this.entries.map((entry) => ({
      resource: entry.resource ?? "unnamed resource",
      ...(entry.manualCommand ? { manualCommand: entry.manualCommand } : {}),
    }));
  }

  async unwind(outcome: "success" | "failure", retries = 3): Promise<CleanupFailure[]> {
    const failures: CleanupFailure[] = [];
    while (this.entries.length > 0) {
      const entry = this.entries.pop() as Entry;
      if (entry.when === "failure" && outcome === "success") continue;
      try {
        await retry(async () => {
          await entry.cleanup();
        }, { retries, minDelayMs: 200, maxDelayMs: 2000 });
      } catch (error) {
        failures.push({
          resource: entry.resource ?? "unnamed resource",
          error: error instanceof Error ? error.message : String(error),
          ...(entry.manualCommand ? { manualCommand: entry.manualCommand } : {}),
        });
      }
    }
    return failures;
  }
}

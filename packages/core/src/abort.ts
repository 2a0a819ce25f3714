/** Rejects as soon as `signal` aborts, so a stuck call does not hold up cleanup. The abandoned promise's outcome is ignored. */
export function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    work.catch(() => {});
    return Promise.reject(abortReason(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      work.catch(() => {});
      reject(abortReason(signal));
    };
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason ?? "aborted"));
}

/**
 * Remembers work that may outlive the race that gave up on it. Before a bake unwinds, the runner waits (up to a grace
 * deadline) for abandoned steps to return, so what they created is registered — and removed — instead of leaked.
 */
export class PendingWork {
  private readonly pending = new Set<Promise<unknown>>();

  track<T>(work: Promise<T>): Promise<T> {
    this.pending.add(work);
    const forget = () => this.pending.delete(work);
    work.then(forget, forget);
    return work;
  }

  get size(): number {
    return this.pending.size;
  }

  /** Waits until every tracked piece of work has settled, or `graceMs` has passed; true when nothing is left running. */
  async settle(graceMs: number): Promise<boolean> {
    if (this.pending.size === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const timeUp = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), graceMs);
    });
    const settled = Promise.allSettled([...this.pending]).then(() => true);
    try {
      return await Promise.race([settled, timeUp]);
    } finally {
      clearTimeout(timer);
    }
  }
}

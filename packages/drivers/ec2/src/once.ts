/**
 * Work that runs at most once at a time and, once it succeeded, never again: every caller shares the run under way or the
 * one that succeeded. A failed run is forgotten, so the next call (a cleanup's retry) calls EC2 again instead of repeating the
 * old failure. Lets a driver start removing something early while the deferred cleanup stays in place: the cleanup then
 * waits for that removal, or finds it done, without a second API call.
 */
export function once(work: (signal?: AbortSignal) => Promise<void>): (signal?: AbortSignal) => Promise<void> {
  let running: Promise<void> | undefined;
  return (signal) => {
    running ??= work(signal).catch((error: unknown) => {
      running = undefined;
      throw error;
    });
    return running;
  };
}

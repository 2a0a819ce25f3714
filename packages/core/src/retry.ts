import pRetry, { AbortError } from "p-retry";

export interface RetryOptions {
  /** Attempts after the first. */
  retries: number;
  /** Only errors this accepts are retried; others fail at once. Default: every error. */
  isRetryable?: (error: unknown) => boolean;
  minDelayMs?: number;
  maxDelayMs?: number;
  /** Give up once this much time has passed since the first attempt. */
  deadlineMs?: number;
  signal?: AbortSignal;
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
}

/** Runs `task` with exponential backoff (with jitter) until it succeeds, a non-retryable error occurs, or the budget runs out. */
export async function retry<T>(task: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const minTimeout = options.minDelayMs ?? 250;
  return pRetry(
    async (attempt) => {
      try {
        return await task(attempt);
      } catch (error) {
        if (options.isRetryable && !options.isRetryable(error)) throw new AbortError(error as Error);
        throw error instanceof Error ? error : new Error(String(error));
      }
    },
    {
      retries: options.retries,
      minTimeout,
      maxTimeout: options.maxDelayMs ?? 10_000,
      factor: 2,
      randomize: true,
      ...(options.deadlineMs !== undefined ? { maxRetryTime: options.deadlineMs } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      onFailedAttempt: (error) => {
        if (error.retriesLeft > 0) {
          options.onRetry?.(
            error,
            error.attemptNumber,
            Math.min(minTimeout * 2 ** (error.attemptNumber - 1), options.maxDelayMs ?? 10_000),
          );
        }
      },
    },
  );
}

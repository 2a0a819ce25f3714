import { setTimeout as sleep } from "node:timers/promises";
import { formatDuration, KilnError, parseDuration, type KilnErrorCode, type Logger } from "@kiln/core";
import type { Ec2Options } from "./options.js";

export interface Polling {
  delayMs: number;
  maxAttempts: number;
}

export function pollingOf(opts: Pick<Ec2Options, "polling">): Polling {
  return { delayMs: parseDuration(opts.polling?.delay ?? "2s"), maxAttempts: opts.polling?.max_attempts ?? 300 };
}

export interface WaitFor<T> {
  /** Says what is awaited, for progress and errors: "instance i-0abc to be running". */
  what: string;
  /** One check; throws to fail the wait. */
  check: () => Promise<T>;
  /** `true` when done; a string when the wait can never succeed (e.g. the AMI failed), saying why. */
  done: (value: T) => boolean | string;
  polling: Polling;
  signal?: AbortSignal | undefined;
  log?: Logger | undefined;
  code?: KilnErrorCode;
}

/** The pause before the first check; pauses double from here up to `delayMs`, so a quick transition is seen quickly. */
const FIRST_DELAY_MS = 500;

/**
 * Polls until `done`: pauses 500 ms (what is awaited was just asked for: an immediate check would only see it pending), then
 * twice as long before each further check up to `delayMs` — never a busy loop — for at most `maxAttempts` checks (Packer's
 * aws_polling). Progress goes to the log: at the start, then about every 30 s.
 */
export async function waitFor<T>(wait: WaitFor<T>): Promise<T> {
  const started = Date.now();
  let reported = started;
  wait.log?.info(`waiting for ${wait.what}`);
  for (let attempt = 1; ; attempt++) {
    await pause(Math.min(wait.polling.delayMs, FIRST_DELAY_MS * 2 ** (attempt - 1)), wait.signal);
    const value = await wait.check();
    const outcome = wait.done(value);
    if (outcome === true) {
      wait.log?.debug(
        `${wait.what}: done after ${formatDuration(Date.now() - started)} (${attempt} ${attempt === 1 ? "check" : "checks"})`,
      );
      return value;
    }
    if (typeof outcome === "string") throw new KilnError(wait.code ?? "E_LAUNCH", `gave up waiting for ${wait.what}: ${outcome}`);
    if (attempt >= wait.polling.maxAttempts) {
      throw new KilnError(
        "E_TIMEOUT",
        `gave up waiting for ${wait.what} after ${attempt} checks (${formatDuration(Date.now() - started)})`,
        {
          hint: "raise polling.max_attempts or polling.delay if the platform is slow",
        },
      );
    }
    if (Date.now() - reported >= 30_000) {
      reported = Date.now();
      wait.log?.info(`still waiting for ${wait.what} (${formatDuration(reported - started)})`);
    }
  }
}

function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return sleep(ms, undefined, signal ? { signal } : {}).catch((error) => {
    throw signal?.reason instanceof Error ? signal.reason : error;
  });
}

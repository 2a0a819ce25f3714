import { createHash } from "node:crypto";
import { NodeSSH } from "node-ssh";
import { KilnError, retry } from "@kiln/core";

/** Where and how to log in; the part of the options every (re)connect needs. */
export interface SshTarget {
  host: string;
  port: number;
  user: string;
  privateKey: string;
}

export interface WaitOptions {
  /** Host key the server must present (`ssh-ed25519 AAAA…`); undefined accepts and captures the first one. */
  hostKey: string | undefined;
  deadlineMs: number;
  signal: AbortSignal | undefined;
  onRetry: ((attempt: number, error: unknown) => void) | undefined;
}

export interface Session {
  ssh: NodeSSH;
  hostKey: string;
}

/** A single handshake may take this long; the overall wait is bounded by the deadline. */
const HANDSHAKE_TIMEOUT_MS = 20_000;

/**
 * Waits for sshd with exponential backoff until the deadline: the port must accept connections, the server must send its banner
 * and accept the key (a fresh machine may still be installing it). A different host key than the pinned one fails at once.
 */
export async function waitForSsh(target: SshTarget, options: WaitOptions): Promise<Session> {
  const started = Date.now();
  const where = `${target.user}@${target.host}:${target.port}`;
  try {
    return await retry(
      () =>
        connectOnce(
          target,
          options.hostKey,
          Math.max(1000, Math.min(HANDSHAKE_TIMEOUT_MS, options.deadlineMs - (Date.now() - started))),
          options.signal,
        ),
      {
        // The deadline ends the wait; p-retry precomputes its delays, so the count must stay finite.
        retries: 1000,
        deadlineMs: options.deadlineMs,
        minDelayMs: 250,
        maxDelayMs: 5_000,
        isRetryable: (error) => !(error instanceof KilnError) && !isBadKey(error),
        ...(options.signal ? { signal: options.signal } : {}),
        onRetry: (error, attempt) => options.onRetry?.(attempt, error),
      },
    );
  } catch (error) {
    if (options.signal?.aborted) throw abortReason(options.signal);
    if (error instanceof KilnError) throw error;
    throw new KilnError(
      "E_LAUNCH",
      `cannot connect over SSH to ${where} within ${Math.round(options.deadlineMs / 1000)}s: ${(error as Error).message}`,
      {
        hint: isBadKey(error)
          ? "the private key cannot be read: pass the key text (OpenSSH or PEM), not a path"
          : "check that sshd runs, the port is reachable from here and the key is authorized for this user",
        cause: error,
      },
    );
  }
}

async function connectOnce(
  target: SshTarget,
  pinned: string | undefined,
  readyTimeout: number,
  signal: AbortSignal | undefined,
): Promise<Session> {
  const ssh = new NodeSSH();
  let presented: string | undefined;
  const connecting = ssh.connect({
    host: target.host,
    port: target.port,
    username: target.user,
    privateKey: target.privateKey,
    readyTimeout,
    // Notices a dead peer (a machine that rebooted) instead of waiting on a half-open TCP connection forever.
    keepaliveInterval: 10_000,
    keepaliveCountMax: 3,
    hostVerifier: (key: Buffer) => {
      presented = formatHostKey(key);
      return pinned === undefined || presented === pinned;
    },
  });
  try {
    await raceAbort(connecting, signal, () => ssh.dispose());
  } catch (error) {
    ssh.dispose();
    if (pinned !== undefined && presented !== undefined && presented !== pinned) throw hostKeyChanged(target, pinned, presented, error);
    throw error;
  }
  if (presented === undefined) throw new KilnError("E_LAUNCH", `${target.host}:${target.port} presented no host key`);
  // node-ssh stops listening for errors once connected; an unhandled 'error' event would crash the process.
  ssh.connection?.on("error", () => {});
  return { ssh, hostKey: presented };
}

function hostKeyChanged(target: SshTarget, pinned: string, presented: string, cause: unknown): KilnError {
  return new KilnError(
    "E_LAUNCH",
    `host key changed for ${target.host}:${target.port}: expected ${fingerprint(pinned)}, got ${fingerprint(presented)}`,
    {
      hint: "another machine answers on this address (or someone is intercepting the connection); Kiln refuses to continue",
      cause,
    },
  );
}

/** The key as an OpenSSH `known_hosts` entry without the host: `ssh-ed25519 AAAA…`. */
export function formatHostKey(blob: Buffer): string {
  // An SSH public key blob starts with its type as a length-prefixed string.
  const length = blob.length >= 4 ? blob.readUInt32BE(0) : 0;
  const type = blob.subarray(4, 4 + length).toString("ascii") || "unknown";
  return `${type} ${blob.toString("base64")}`;
}

/** `SHA256:…`, the form `ssh-keygen -lf` and ssh's own warnings print. */
export function fingerprint(hostKey: string): string {
  const blob = Buffer.from(hostKey.split(" ")[1] ?? "", "base64");
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

function isBadKey(error: unknown): boolean {
  return error instanceof Error && /Cannot parse privateKey|privateKey.*(?:valid|unsupported)/i.test(error.message);
}

export function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new KilnError("E_INTERRUPTED", "aborted");
}

/** Settles with `task`, or rejects with the abort reason (after `onAbort`) as soon as `signal` fires. */
export async function raceAbort<T>(task: Promise<T>, signal: AbortSignal | undefined, onAbort?: () => void): Promise<T> {
  if (!signal) return task;
  let listener: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    listener = () => {
      onAbort?.();
      reject(abortReason(signal));
    };
    if (signal.aborted) listener();
    else signal.addEventListener("abort", listener, { once: true });
  });
  try {
    return await Promise.race([task, aborted]);
  } finally {
    if (listener) signal.removeEventListener("abort", listener);
    // The losing promise must not surface as an unhandled rejection.
    task.catch(() => {});
  }
}

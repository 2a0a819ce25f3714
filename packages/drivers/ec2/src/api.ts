import { EC2Client } from "@aws-sdk/client-ec2";
import { KilnError, parseDuration, retry, type KilnErrorCode, type Logger } from "@kiln/core";
import type { Ec2Options } from "./options.js";

/** Codes EC2 answers when it throttles the caller. */
const THROTTLING = new Set([
  "RequestLimitExceeded",
  "Throttling",
  "ThrottlingException",
  "RequestThrottled",
  "RequestThrottledException",
  "TooManyRequestsException",
]);
/** Codes of a transient failure on EC2's side. */
const TRANSIENT = new Set([
  "InternalError",
  "InternalFailure",
  "ServiceUnavailable",
  "Unavailable",
  "TimeoutError",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
]);

export interface CallOptions {
  /** Error codes that mean "not visible yet" for this call (EC2 is eventually consistent), retried like throttling. */
  notYet?: string[];
  /** Error code of the KilnError a final failure becomes. Default E_LAUNCH. */
  code?: KilnErrorCode;
  signal?: AbortSignal | undefined;
}

/**
 * EC2 clients (one per region) and the one retry policy every call goes through: throttling, eventual consistency and transient
 * 5xx answers are retried with exponential backoff until `api_retry_deadline`; anything else fails at once with the action named.
 * The SDK's own retries are off (maxAttempts 1) so there is one policy, with a deadline, that says in the log what it retries.
 */
export class Ec2Api {
  private readonly deadlineMs: number;

  constructor(
    private readonly options: Pick<Ec2Options, "region" | "endpoint" | "api_retry_deadline">,
    private readonly clients: Ec2Clients,
    private readonly log: Logger | undefined,
    /** Aborts every call that names no signal of its own: a fleet command's Ctrl-C. */
    private readonly signal?: AbortSignal,
  ) {
    this.deadlineMs = parseDuration(options.api_retry_deadline ?? "2m");
  }

  get region(): string {
    return this.options.region;
  }

  /** The same API whose calls stop when `signal` aborts: a cleanup's, whose time is up. */
  withSignal(signal: AbortSignal): Ec2Api {
    return new Ec2Api(this.options, this.clients, this.log, signal);
  }

  client(region = this.options.region): EC2Client {
    return this.clients.get(region, this.options.endpoint);
  }

  /** Runs one API call (named `action` in messages and logs) with the retry policy. */
  async call<T>(
    action: string,
    send: (client: EC2Client, http: { abortSignal?: AbortSignal }) => Promise<T>,
    options: CallOptions & { region?: string } = {},
  ): Promise<T> {
    const client = this.client(options.region);
    const notYet = new Set(options.notYet ?? []);
    options = { ...options, signal: options.signal ?? this.signal };
    try {
      const http = options.signal ? { abortSignal: options.signal } : {};
      return await retry(() => send(client, http), {
        retries: 1000,
        deadlineMs: this.deadlineMs,
        minDelayMs: 250,
        maxDelayMs: 10_000,
        isRetryable: (error) => isRetryable(error, notYet),
        ...(options.signal ? { signal: options.signal } : {}),
        onRetry: (error, attempt, delayMs) =>
          this.log?.info(`EC2 ${action}: ${errorCode(error)}, retrying in ${(delayMs / 1000).toFixed(1)}s (attempt ${attempt + 1})`),
      });
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason instanceof Error ? options.signal.reason : error;
      throw apiError(action, error, options.code ?? "E_LAUNCH", this.options.endpoint);
    }
  }
}

/** One SDK client per region and endpoint, shared by every bake of a driver instance (they keep connections alive). */
export class Ec2Clients {
  private readonly clients = new Map<string, EC2Client>();

  get(region: string, endpoint: string | undefined): EC2Client {
    const key = `${region} ${endpoint ?? ""}`;
    let client = this.clients.get(key);
    if (!client) {
      // Credentials come from the SDK's default chain (environment, profile, SSO, instance role); Kiln never reads or logs them.
      client = new EC2Client({ region, maxAttempts: 1, ...(endpoint ? { endpoint } : {}) });
      this.clients.set(key, client);
    }
    return client;
  }
}

/** The EC2 error code (`InvalidAMIID.NotFound`), or a network error's code. */
function errorCode(error: unknown): string {
  const err = error as { name?: string; code?: string; Code?: string; cause?: { code?: string } };
  if (err?.code && /^E[A-Z]+$/.test(err.code)) return err.code;
  if (err?.cause?.code) return err.cause.code;
  return err?.Code ?? err?.name ?? "Error";
}

export function isNotFound(error: unknown): boolean {
  return /\.NotFound$|^InvalidAMIID\.Unavailable$/.test(errorCode(error));
}

function isRetryable(error: unknown, notYet: Set<string>): boolean {
  const code = errorCode(error);
  const status = (error as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode ?? 0;
  return THROTTLING.has(code) || TRANSIENT.has(code) || notYet.has(code) || status >= 500;
}

const HINTS: Record<string, string> = {
  UnauthorizedOperation: "the credentials lack an IAM permission for this action: see the driver's README for the policy Kiln needs",
  AuthFailure: "the credentials were refused: check AWS_PROFILE / AWS_ACCESS_KEY_ID and that they are for this account",
  CredentialsProviderError: "no AWS credentials found: set AWS_PROFILE (and aws sso login) or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
  "InvalidAMIID.NotFound": "the AMI does not exist in this region, or you may not launch it",
  InsufficientInstanceCapacity: "EC2 has no capacity for this instance type here now: try another instance_type or subnet",
  ECONNREFUSED: "nothing answers at the endpoint: is the EC2 emulator running (node packages/ec2-emulator/dist/cli.js)?",
};

function apiError(action: string, error: unknown, code: KilnErrorCode, endpoint: string | undefined): KilnError {
  if (error instanceof KilnError) return error;
  const ec2Code = errorCode(error);
  const message = (error as Error)?.message ?? String(error);
  const where = endpoint ? ` at ${endpoint}` : "";
  return new KilnError(code, `EC2 ${action} failed${where}: ${ec2Code}: ${message}`, {
    ...(HINTS[ec2Code] ? { hint: HINTS[ec2Code] } : {}),
    cause: error,
  });
}

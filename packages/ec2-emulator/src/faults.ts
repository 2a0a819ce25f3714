import { Ec2Error } from "./errors.js";

/** An error to answer instead of running an action. */
export interface FaultSpec {
  /** EC2 error code the SDK will surface as the error's `name`, e.g. "InsufficientInstanceCapacity". */
  code: string;
  /** Error message. Default "Injected fault". */
  message?: string;
  /** HTTP status. Default 400 (500s and 503s make the SDK retry). */
  status?: number;
  /** Fail the nth call of the action counted from when the fault is injected (1 = the next call). Default 1. */
  nth?: number;
}

/** A fault given at start-up; `nth` then counts from the emulator's first call. */
export interface FaultRule extends FaultSpec {
  action: string;
}

/** Counts calls per action and decides which ones fail. Every call received counts, throttled and failed ones included. */
export class FaultPlan {
  private readonly calls = new Map<string, number>();
  private readonly pending: Array<{ action: string; atCall: number; spec: FaultSpec }> = [];
  private readonly throttled = new Map<string, number>();

  inject(action: string, spec: FaultSpec): void {
    this.pending.push({ action, atCall: this.count(action) + (spec.nth ?? 1), spec });
  }

  /** The next `calls` calls of the action answer 503 RequestLimitExceeded. */
  throttle(action: string, calls: number): void {
    this.throttled.set(action, (this.throttled.get(action) ?? 0) + calls);
  }

  count(action: string): number {
    return this.calls.get(action) ?? 0;
  }

  /** Calls per action so far (for call-count assertions and benchmarks). */
  counts(): Record<string, number> {
    return Object.fromEntries(this.calls);
  }

  /** Forgets every pending fault and throttle (e.g. between tests sharing one emulator). */
  clear(): void {
    this.pending.length = 0;
    this.throttled.clear();
  }

  /** Records a call; returns the error to answer with, if this call is to fail. */
  onCall(action: string): Ec2Error | undefined {
    const call = this.count(action) + 1;
    this.calls.set(action, call);
    const throttled = this.throttled.get(action) ?? 0;
    if (throttled > 0) {
      this.throttled.set(action, throttled - 1);
      return new Ec2Error("RequestLimitExceeded", "Request limit exceeded.", 503);
    }
    const index = this.pending.findIndex((fault) => fault.action === action && fault.atCall === call);
    if (index === -1) return undefined;
    const [fault] = this.pending.splice(index, 1);
    return fault && new Ec2Error(fault.spec.code, fault.spec.message ?? "Injected fault", fault.spec.status ?? 400);
  }
}

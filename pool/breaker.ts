import type { BreakerState } from "./types.ts";

/**
 * Counts consecutive `create` failures and opens after `threshold` of them.
 * While open nothing is created; after `cooldownMs` one probe is let through
 * (half-open): its success closes the breaker, its failure reopens it.
 * A disabled breaker is one with an infinite threshold: it still counts
 * failures, which the retry backoff uses.
 */
export class CircuitBreaker {
  /** Current state. */
  state: BreakerState = "closed";
  /** Create failures since the last success. */
  failures = 0;
  /** The most recent create failure, kept as the `cause` of the errors callers get. */
  lastError: unknown = undefined;
  #openedAt = 0;

  /** `threshold` failures in a row open it for `cooldownMs`. */
  constructor(readonly threshold: number, readonly cooldownMs: number) {}

  /** Records a successful create; returns true if that closed the breaker. */
  recordSuccess(): boolean {
    this.failures = 0;
    this.lastError = undefined;
    if (this.state === "closed") return false;
    this.state = "closed";
    return true;
  }

  /** Records a failed create; returns true if that opened the breaker. */
  recordFailure(error: unknown, now: number): boolean {
    this.failures++;
    this.lastError = error;
    if (
      this.state === "half-open" || (this.state === "closed" && this.failures >= this.threshold)
    ) {
      this.state = "open";
      this.#openedAt = now;
      return true;
    }
    return false;
  }

  /** Whether an acquire must fail now: open and still cooling down. */
  rejects(now: number): boolean {
    return this.state === "open" && now < this.#openedAt + this.cooldownMs;
  }

  /**
   * Whether a create may start now. After the cooldown this moves the
   * breaker to half-open and allows exactly one probe.
   */
  allowCreate(now: number): boolean {
    if (this.state === "closed") return true;
    if (this.state === "half-open" || this.rejects(now)) return false;
    this.state = "half-open";
    return true;
  }

  /** Milliseconds until a probe may run. */
  retryAfterMs(now: number): number {
    return Math.max(0, Math.ceil(this.#openedAt + this.cooldownMs - now));
  }
}

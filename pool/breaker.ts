import type { BreakerState } from "./types.ts";

/**
 * The circuit breaker on `create`: counts failures in a row and opens after
 * `threshold` of them, or at once for a permanent one. While open, callers
 * fail fast and the pool probes the backend on a schedule: one create every
 * `cooldownMs / threshold` (so a failing backend sees at most `threshold`
 * attempts per cooldown), or after the whole `cooldownMs` when the failure
 * was permanent. A probe in flight is `half-open`: its success closes the
 * breaker, its failure opens it again.
 *
 * A disabled breaker has an infinite threshold: it never opens on counted
 * failures (which still drive the retry backoff), only on permanent ones.
 */
export class CircuitBreaker {
  /** Current state. */
  state: BreakerState = "closed";
  /** Counted create failures since the last success. */
  failures = 0;
  /** The most recent create failure, kept as the `cause` of the errors callers get. */
  lastError: unknown = undefined;
  /** Whether the most recent failure was permanent (`isPermanent`). */
  permanent = false;
  #nextProbeAt = 0;

  /** `threshold` failures in a row open it; it probes `threshold` times per `cooldownMs`. */
  constructor(readonly threshold: number, readonly cooldownMs: number) {}

  /** Records a successful create; returns true if that closed the breaker. */
  recordSuccess(): boolean {
    this.failures = 0;
    this.lastError = undefined;
    this.permanent = false;
    if (this.state === "closed") return false;
    this.state = "closed";
    return true;
  }

  /**
   * Records a failed create. `counted` is false for a create that was
   * already running when an earlier one failed: it is the same outage, not
   * another failure in a row. Returns true if the breaker (re)opened.
   */
  recordFailure(error: unknown, now: number, counted: boolean, permanent: boolean): boolean {
    this.lastError = error;
    if (!counted && !permanent) return false;
    this.failures++;
    this.permanent = permanent;
    const opens = permanent || this.state === "half-open" || this.failures >= this.threshold;
    if (!opens) return false;
    this.state = "open";
    const interval = permanent ? this.cooldownMs : this.cooldownMs / this.threshold;
    this.#nextProbeAt = now + interval;
    return true;
  }

  /** Whether an acquire must fail now: open, and the next probe is not due yet. */
  rejects(now: number): boolean {
    return this.state === "open" && now < this.#nextProbeAt;
  }

  /** Whether creates are limited to one at a time (the backend is failing). */
  get failing(): boolean {
    return this.failures > 0 || this.state !== "closed";
  }

  /**
   * Whether a create may start now. When the next probe is due this moves
   * the breaker to half-open and allows exactly one.
   */
  allowCreate(now: number): boolean {
    if (this.state === "closed") return true;
    if (this.state === "half-open" || this.rejects(now)) return false;
    this.state = "half-open";
    return true;
  }

  /** Milliseconds until the next probe may run (0 when not open). */
  retryAfterMs(now: number): number {
    if (this.state !== "open") return 0;
    return Math.max(0, Math.ceil(this.#nextProbeAt - now));
  }

  /** Forgets every failure (the user fixed the cause): closed, and creates may start at once. */
  reset(): boolean {
    const wasClosed = this.state === "closed";
    this.recordSuccess();
    return !wasClosed;
  }
}

import type { Timer } from "./clock.ts";
import type { FailureSummary } from "./errors.ts";
import type { Inventory, PoolLoop } from "./inventory.ts";
import type { BreakerState } from "./types.ts";

// ---- backoff ----------------------------------------------------------------------------

/** First retry delay after a failed `create`, before jitter. */
export const BACKOFF_BASE_MS = 100;
/**
 * No retry waits longer than this, so a backend that comes back is used
 * within about a second (HikariCP and psycopg_pool retry on the same scale).
 */
export const BACKOFF_CAP_MS = 1_000;
/**
 * A create that succeeded this recently proves that the backend takes us;
 * without such proof creates run one at a time (see {@link Creator}).
 */
export const PROOF_FRESH_MS = 5_000;

/**
 * The delay before retry number `attempt` (1-based): exponential from
 * {@link BACKOFF_BASE_MS}, capped at {@link BACKOFF_CAP_MS}, with jitter that
 * keeps between half and all of it, so pools restarting together spread out.
 */
export function backoffDelayMs(attempt: number, random: () => number = Math.random): number {
  const exponential = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, attempt - 1));
  return exponential * (0.5 + random() / 2);
}

// ---- circuit breaker --------------------------------------------------------------------
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

// ---- the creator ------------------------------------------------------------------------

/**
 * Makes resources (HikariCP's `PoolEntryCreator`): starts creates, records
 * their timings, and decides how fast to try again when they fail.
 *
 * Creates run as many at once as callers need only while the pool has fresh
 * proof that creating works: a create succeeded within {@link PROOF_FRESH_MS}
 * and none has failed or been found broken since. Without that proof (at the
 * start, after a quiet spell, after `invalidate()`, after a resource turned
 * out broken, after a failure) one create runs alone until one succeeds, so a
 * rotated password, a wrong PIN or a full server (`too many clients`) sees one
 * attempt at a time whatever `max` and the number of callers. Failed attempts
 * are retried after a jittered backoff capped at one second; the breaker
 * opens after `threshold` failures in a row. Creates that were already
 * running when the first one failed belong to the same outage: their
 * failures do not count towards the breaker.
 */
export class Creator<R> {
  /** Creates under way. */
  creating = 0;
  /** Opens after too many failures in a row, or one permanent failure. */
  readonly breaker: CircuitBreaker;
  /** Bumped by each counted failure: a create started before it is a concurrent one. */
  #epoch = 0;
  /** The pending retry or probe, if any. */
  #timer: Timer | undefined = undefined;
  /** When a create last succeeded, if nothing has cast doubt on it since. */
  #provenAt = -Infinity;

  constructor(
    readonly inventory: Inventory<R>,
    readonly shutdown: AbortSignal,
    readonly loop: PoolLoop<R>,
  ) {
    const { breakerThreshold, breakerCooldownMs } = inventory.opts;
    this.breaker = new CircuitBreaker(breakerThreshold, breakerCooldownMs);
  }

  /** What errors say about the failures behind them. */
  get failure(): FailureSummary {
    const { failures, lastError, permanent } = this.breaker;
    return { failures, lastError, permanent };
  }

  /** Milliseconds until the breaker lets a create through. */
  retryAfterMs(now: number): number {
    return this.breaker.retryAfterMs(now);
  }

  /** Whether the breaker fails callers fast now (when nothing else can serve them). */
  rejects(now: number): boolean {
    return this.breaker.rejects(now);
  }

  /**
   * Starts up to `wanted` creates: as many as `max`, the backoff and the
   * breaker allow. `forCaller`: someone waits for them (else it is the
   * top-up to `min`).
   */
  grow(wanted: number, now: number, forCaller: boolean): void {
    const inventory = this.inventory;
    let n = Math.min(wanted, inventory.opts.max - inventory.all.size - this.creating);
    if (n <= 0 || this.#timer !== undefined) return;
    if (this.breaker.failing) {
      // After a permanent failure only a caller's request probes, never the top-up to min:
      // an HSM may lock its PIN after a few wrong tries.
      if (this.breaker.permanent && !forCaller) return;
      if (this.creating > 0 || !this.#allowProbe(now)) return;
      n = 1;
    } else if (now - this.#provenAt > PROOF_FRESH_MS || inventory.all.size === 0) {
      // Nothing shows that the backend takes us now: one create, alone, until one succeeds.
      if (this.creating > 0) return;
      n = 1;
    }
    while (n-- > 0) this.#start(now);
  }

  /** A caller waits now: let a pending retry keep the process alive. */
  keepAlive(): void {
    if (this.#timer !== undefined) this.inventory.clock.refTimer(this.#timer, true);
  }

  /** Forgets every failure (`pool.invalidate()`): the next create may start at once. */
  reset(): void {
    this.stop();
    this.#epoch++;
    this.#provenAt = -Infinity;
    if (this.breaker.reset()) this.#breakerEvent(undefined);
  }

  /**
   * A resource turned out broken (its holder destroyed it, or it failed its validation or
   * reset): until the next create succeeds, creates run one at a time again.
   */
  doubt(): void {
    this.#provenAt = -Infinity;
  }

  /** The pool closes: no more retries. */
  stop(): void {
    this.inventory.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #allowProbe(now: number): boolean {
    const before = this.breaker.state;
    const allowed = this.breaker.allowCreate(now);
    if (before !== this.breaker.state) this.#breakerEvent(undefined);
    return allowed;
  }

  #start(startedAt: number): void {
    this.creating++;
    const epoch = this.#epoch;
    let creation: Promise<R>;
    try {
      creation = Promise.resolve(this.inventory.factory.create(this.shutdown));
    } catch (error) {
      creation = Promise.reject(error);
    }
    creation.then(
      (resource) => this.#succeeded(resource, startedAt),
      (error) => this.#failed(error, startedAt, epoch),
    );
  }

  #succeeded(resource: R, startedAt: number): void {
    this.creating--;
    const now = this.#record(startedAt, true);
    this.#provenAt = now;
    if (this.breaker.recordSuccess()) this.#breakerEvent(undefined);
    this.stop();
    this.loop.created(resource, now);
  }

  #failed(error: unknown, startedAt: number, epoch: number): void {
    this.creating--;
    const now = this.#record(startedAt, false);
    const inventory = this.inventory;
    inventory.counters.createErrors++;
    if (inventory.events.active) inventory.events.emit({ type: "createError", error });
    if (inventory.state !== "open") return this.loop.dispatch(now);
    this.#provenAt = -Infinity;
    const counted = epoch === this.#epoch;
    if (counted) this.#epoch++;
    const opened = this.breaker.recordFailure(error, now, counted, this.#isPermanent(error));
    if (opened) {
      this.#breakerEvent(error);
      this.#arm(this.breaker.retryAfterMs(now));
    } else if (this.creating === 0 && this.breaker.state === "closed") {
      this.#arm(backoffDelayMs(this.breaker.failures));
    }
    this.loop.createFailed(error, now, opened);
  }

  #record(startedAt: number, ok: boolean): number {
    const now = this.inventory.clock.now();
    this.inventory.createTimes.record(now - startedAt);
    this.inventory.tracker?.created(now - startedAt, ok);
    return now;
  }

  #isPermanent(error: unknown): boolean {
    const isPermanent = this.inventory.factory.isPermanent;
    if (isPermanent === undefined) return false;
    try {
      return isPermanent(error) === true;
    } catch (thrown) {
      this.inventory.backgroundError("isPermanent", thrown);
      return false;
    }
  }

  #arm(ms: number): void {
    const clock = this.inventory.clock;
    clock.clearTimeout(this.#timer);
    this.#timer = clock.setTimeout(this.#due, ms, !this.loop.hasWaiters());
  }

  #due = (): void => {
    this.#timer = undefined;
    this.loop.dispatch(this.inventory.clock.now());
  };

  #breakerEvent(cause: unknown): void {
    const events = this.inventory.events;
    if (!events.active) return;
    const state = this.breaker.state;
    events.emit(
      cause === undefined ? { type: "breaker", state } : { type: "breaker", state, cause },
    );
  }
}

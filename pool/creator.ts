import type { Timer } from "./clock.ts";
import type { FailureSummary } from "./errors.ts";
import type { Inventory, PoolLoop } from "./inventory.ts";
import type { BreakerState } from "./types.ts";

// ---- backoff ----------------------------------------------------------------------------

/** First retry delay after a failed `create` while the pool holds no resource, before jitter. */
export const BACKOFF_BASE_MS = 100;
/**
 * No retry waits longer than this, so a backend that comes back is used
 * within about a second (HikariCP and psycopg_pool retry on the same scale).
 * It is also the first retry delay while the pool holds resources: they
 * serve the callers meanwhile, and a full server is not asked again at once.
 */
export const BACKOFF_CAP_MS = 1_000;

/**
 * The delay before retry number `attempt` (1-based): exponential from
 * {@link BACKOFF_BASE_MS}, or from {@link BACKOFF_CAP_MS} when `serving`
 * (the pool holds resources), capped at {@link BACKOFF_CAP_MS}, with jitter
 * that keeps between half and all of it, so pools restarting together spread out.
 */
export function backoffDelayMs(
  attempt: number,
  serving: boolean,
  random: () => number = Math.random,
): number {
  const base = serving ? BACKOFF_CAP_MS : BACKOFF_BASE_MS;
  const exponential = Math.min(BACKOFF_CAP_MS, base * 2 ** Math.max(0, attempt - 1));
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
   * already running when the failures were forgotten (`reset()`): it says
   * nothing about what was fixed since. Returns true if the breaker (re)opened.
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

  /** Whether the backend is failing: creates wait for the backoff or the breaker's probe. */
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
 * One create runs at a time, always: the pool grows one resource after
 * another, as HikariCP and psycopg_pool do. So a backend that refuses us (a
 * rotated password, a wrong PIN, a server full with `too many clients`) sees
 * one attempt at a time whatever `max`, the number of callers and how well
 * creating went so far. A failed attempt is retried after a jittered backoff
 * capped at one second; it starts at the cap while the pool holds resources
 * (they serve the callers meanwhile) and at 100 ms while it holds none (a
 * short outage stays invisible). The breaker opens after `threshold`
 * failures in a row.
 */
export class Creator<R> {
  /** Creates under way (0 or 1). */
  creating = 0;
  /** Opens after too many failures in a row, or one permanent failure. */
  readonly breaker: CircuitBreaker;
  /** Bumped by `reset()`: a create started before it is not counted when it fails. */
  #epoch = 0;
  /** The pending retry or probe, if any. */
  #timer: Timer | undefined = undefined;

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
   * Starts one create, unless one is under way, the pool is full, or the
   * backoff or the breaker says wait. `forCaller`: someone waits for it
   * (else it is the top-up to `min`).
   */
  grow(now: number, forCaller: boolean): void {
    const inventory = this.inventory;
    if (this.creating > 0 || this.#timer !== undefined) return;
    if (inventory.all.size >= inventory.opts.max) return;
    if (this.breaker.failing) {
      // After a permanent failure only a caller's request probes, never the top-up to min:
      // an HSM may lock its PIN after a few wrong tries.
      if (this.breaker.permanent && !forCaller) return;
      if (!this.#allowProbe(now)) return;
    }
    this.#start(now);
  }

  /** A caller waits now: let a pending retry keep the process alive. */
  keepAlive(): void {
    if (this.#timer !== undefined) this.inventory.clock.refTimer(this.#timer, true);
  }

  /** Forgets every failure (`pool.invalidate()`): the next create may start at once. */
  reset(): void {
    this.stop();
    this.#epoch++;
    if (this.breaker.reset()) this.#breakerEvent(undefined);
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
    const counted = epoch === this.#epoch;
    const opened = this.breaker.recordFailure(error, now, counted, this.#isPermanent(error));
    if (opened) {
      this.#breakerEvent(error);
      this.#arm(this.breaker.retryAfterMs(now));
    } else if (this.breaker.state === "closed") {
      this.#arm(backoffDelayMs(this.breaker.failures, inventory.all.size > 0));
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

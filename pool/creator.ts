import { backoffDelayMs } from "./backoff.ts";
import { CircuitBreaker } from "./breaker.ts";
import type { Timer } from "./clock.ts";
import type { FailureSummary } from "./errors.ts";
import type { Inventory } from "./inventory.ts";

/** What the creator tells its pool. */
export interface CreatorHost<R> {
  /** A create succeeded: place the resource (a waiter, idle, or destroy if closing). */
  created(resource: R, now: number): void;
  /** A create failed; `opened`: the breaker just opened, fail the waiters fast. */
  failed(error: unknown, now: number, opened: boolean): void;
  /** A retry or probe is due: decide again what to do. */
  wake(): void;
  /** Whether a caller waits (only then does a retry timer keep the process alive). */
  hasWaiters(): boolean;
}

/**
 * Makes resources (HikariCP's `PoolEntryCreator`): starts creates, records
 * their timings, and decides how fast to try again when they fail.
 *
 * The first create runs alone, and so does the first after `invalidate()`,
 * after a resource turned out broken, or while the pool holds no resource
 * (as after a server restart, or a password change that ended every
 * connection): until one has succeeded, nothing says the backend accepts us,
 * and a wrong password or PIN must reach it once, not `max` times at once.
 * While creates succeed, as many run at once as callers need. After a
 * failure the backend is treated as down: at most one create is in flight
 * (a probe), retried after a jittered backoff capped at one second, so a
 * backend that comes back is used within about a second and a failing one
 * sees one attempt at a time whatever `max` and the number of callers.
 * Creates that were already running when the first one failed belong to
 * the same outage: their failures do not count towards the breaker.
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
  /** Whether a create has succeeded (since the start or the last `reset()`). */
  #proven = false;

  constructor(
    readonly inventory: Inventory<R>,
    readonly shutdown: AbortSignal,
    readonly host: CreatorHost<R>,
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

  /** Whether the breaker fails callers fast now. */
  rejects(now: number): boolean {
    return this.breaker.rejects(now);
  }

  /** Starts up to `wanted` creates: as many as `max`, the backoff and the breaker allow. */
  grow(wanted: number, now: number): void {
    const inventory = this.inventory;
    let n = Math.min(wanted, inventory.opts.max - inventory.all.size - this.creating);
    if (n <= 0 || this.#timer !== undefined) return;
    if (this.breaker.failing) {
      // After a permanent failure only a caller's request probes, never the top-up to min:
      // an HSM may lock its PIN after a few wrong tries.
      if (this.breaker.permanent && !this.host.hasWaiters()) return;
      if (this.creating > 0 || !this.#allowProbe(now)) return;
      n = 1;
    } else if (!this.#proven || inventory.all.size === 0) {
      // Nothing shows the backend takes us now (no create has succeeded yet, or every resource
      // is gone, as after a restart or a password change): the first create runs alone.
      if (this.creating > 0) return; // the first create is under way: wait for its answer
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
    this.inventory.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#epoch++;
    this.#proven = false;
    if (this.breaker.reset()) this.#breakerEvent(undefined);
  }

  /**
   * A resource turned out broken (its holder destroyed it, or it failed its validation or
   * reset): until the next create succeeds, creates run one at a time again.
   */
  doubt(): void {
    this.#proven = false;
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
    this.#proven = true;
    if (this.breaker.recordSuccess()) this.#breakerEvent(undefined);
    this.inventory.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.host.created(resource, now);
  }

  #failed(error: unknown, startedAt: number, epoch: number): void {
    this.creating--;
    const now = this.#record(startedAt, false);
    const inventory = this.inventory;
    inventory.counters.createErrors++;
    if (inventory.events.active) inventory.events.emit({ type: "createError", error });
    if (inventory.state !== "open") return this.host.wake();
    const counted = epoch === this.#epoch;
    if (counted) this.#epoch++;
    const opened = this.breaker.recordFailure(error, now, counted, this.#isPermanent(error));
    if (opened) {
      this.#breakerEvent(error);
      this.#arm(this.breaker.retryAfterMs(now));
    } else if (this.creating === 0 && this.breaker.state === "closed") {
      this.#arm(backoffDelayMs(this.breaker.failures));
    }
    this.host.failed(error, now, opened);
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
    this.#timer = clock.setTimeout(this.#due, ms, !this.host.hasWaiters());
  }

  #due = (): void => {
    this.#timer = undefined;
    this.host.wake();
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

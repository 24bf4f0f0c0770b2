import { AsyncLocalStorage } from "node:async_hooks";
import { type Clock, poolClock, type Timer } from "./clock.ts";
import { Creator } from "./creator.ts";
import { type Entry, REMOVED, VALIDATING } from "./entry.ts";
import {
  circuitOpenError,
  closedError,
  describeError,
  overloadedError,
  type PoolClosedError,
  timeoutError,
} from "./errors.ts";
import { callHook } from "./hooks.ts";
import { Housekeeper } from "./housekeeper.ts";
import { Inventory } from "./inventory.ts";
import { Lease, type LeaseOwner } from "./lease.ts";
import { mapWithPool } from "./map.ts";
import { count, duration, type ResolvedOptions, resolveOptions } from "./options.ts";
import { type PoolTracker, TrackerFanOut } from "./tracker.ts";
import type {
  AcquireOptions,
  CloseOptions,
  EventsOptions,
  MapOptions,
  PoolEvent,
  PoolOptions,
  PoolStats,
} from "./types.ts";
import { DurationHistogram, WaitStats } from "./wait_stats.ts";
import { WaitQueue } from "./waiters.ts";

const NEVER_ABORTED = new AbortController().signal;
const DONE = Promise.resolve();

/**
 * An async resource pool: keeps up to `max` expensive resources (sessions,
 * connections) alive and lends them to concurrent tasks one at a time.
 *
 * The resources and counters live in an {@link Inventory}; callers wait in
 * `#waiters`; the {@link Creator} makes resources and handles failures; the
 * {@link Housekeeper} runs the background jobs. After every change
 * `#dispatch()` matches idle resources to waiters and asks for creates, so
 * there is one place where the pool decides what to do next.
 *
 * @example Lend a resource for the length of a block
 * ```ts
 * import { Pool } from "@poolkit/pool";
 *
 * const pool = new Pool({ create: () => Promise.resolve({ opened: Date.now() }), max: 4 });
 * {
 *   await using lease = await pool.acquire();
 *   console.log(lease.resource.opened);
 * } // released here
 * const n = await pool.use((resource) => resource.opened);
 * await pool.close();
 * ```
 */
export class Pool<R> implements AsyncDisposable {
  readonly #opts: ResolvedOptions;
  readonly #clock: Clock;
  readonly #inv: Inventory<R>;
  readonly #waiters: WaitQueue<Lease<R>>;
  readonly #readyWaiters: WaitQueue<void>;
  readonly #creator: Creator<R>;
  readonly #housekeeper: Housekeeper<R>;
  readonly #waits = new WaitStats();
  readonly #useTimes = new DurationHistogram();
  readonly #owner: LeaseOwner<R>;
  readonly #context: AsyncLocalStorage<Lease<R>> | undefined;
  readonly #shutdown = new AbortController(); // the signal `create` and `validate` get
  #validating = 0; // entries being validated for a waiter: each is promised to one
  #closed: Promise<void> | undefined;
  #drained: (() => void) | undefined;
  #closeTimer: Timer | undefined;
  #forced = false;

  /** Checks the options (throwing `TypeError`/`RangeError` naming the bad one) and starts the pool. */
  constructor(options: PoolOptions<R>) {
    this.#opts = resolveOptions(options);
    this.#clock = poolClock();
    const { create, destroy, validate, reset, isFatal, isPermanent } = options;
    const factory = { create, destroy, validate, reset, isFatal, isPermanent };
    const inv = this.#inv = new Inventory(this.#opts, factory, this.#clock);
    inv.onDestroyed = () => {
      if (inv.state !== "open") this.#finishCloseWhenDrained();
    };
    this.#owner = {
      name: this.#opts.name,
      giveBack: (entry, lease, reuse, reason) => this.#giveBack(entry, lease, reuse, reason),
    };
    this.#context = this.#opts.reentrant ? new AsyncLocalStorage() : undefined;
    this.#waiters = new WaitQueue({
      timeoutError: (timeoutMs, waitedMs) => this.#timeoutError("resource", timeoutMs, waitedMs),
      gaveUp: (reason, waitedMs) => {
        if (reason === "abort") return void inv.counters.aborted++;
        inv.counters.timedOut++;
        inv.tracker?.timedOut();
        if (inv.events.active) inv.events.emit({ type: "timeout", waitedMs });
      },
    }, this.#clock);
    this.#readyWaiters = new WaitQueue({
      timeoutError: (timeoutMs, waitedMs) =>
        this.#timeoutError(`${this.#opts.min} (min) resources ready`, timeoutMs, waitedMs),
      gaveUp: () => {},
    }, this.#clock);
    this.#creator = new Creator(inv, this.#shutdown.signal, {
      created: (resource, now) => this.#placeCreated(resource, now),
      failed: (error, now, opened) => this.#createFailed(error, now, opened),
      wake: () => this.#dispatch(this.#clock.now()),
      hasWaiters: () => this.#waiters.length > 0 || this.#readyWaiters.length > 0,
    });
    this.#housekeeper = new Housekeeper(inv, this.#shutdown.signal, {
      dispatch: (now) => this.#dispatch(now),
      checked: (entry, valid) => this.#checked(entry, valid),
    });
    this.#dispatch(this.#clock.now());
  }

  /** The pool's name, as given in the options. */
  get name(): string {
    return this.#opts.name;
  }

  /**
   * Resolves once `min` resources exist. Rejects like `acquire()` would:
   * `PoolTimeoutError` (carrying the last create failure),
   * `CircuitOpenError`, `PoolClosedError`, or the signal's reason.
   */
  ready(options?: AcquireOptions): Promise<void> {
    if (this.#inv.state !== "open") return Promise.reject(this.#closedError());
    if (this.#inv.all.size >= this.#opts.min) return DONE;
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    try {
      const timeoutMs = duration("timeoutMs", options?.timeoutMs, this.#opts.acquireTimeoutMs);
      const now = this.#clock.now();
      if (this.#creator.breaker.rejects(now)) return Promise.reject(this.#circuitOpenError(now));
      const waiting = this.#readyWaiters.wait(now, signal, timeoutMs);
      this.#creator.keepAlive();
      return waiting;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Borrows a resource. Resolves with a {@link Lease}; release it (or use
   * `await using`) to give the resource back. Rejects with
   * `PoolTimeoutError`, `CircuitOpenError`, `PoolOverloadedError`,
   * `PoolClosedError`, a `RangeError` for a bad `timeoutMs`, or the
   * signal's reason when `signal` aborts.
   */
  acquire(options?: AcquireOptions): Promise<Lease<R>> {
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const inv = this.#inv;
    if (inv.state !== "open") return Promise.reject(this.#closedError());
    const timeoutMs = options?.timeoutMs;
    if (timeoutMs !== undefined && !(typeof timeoutMs === "number" && timeoutMs >= 0)) {
      return Promise.reject(badTimeout(timeoutMs));
    }
    const site = this.#opts.leakDetectionMs > 0 ? acquireSite() : undefined;
    // Fast path: nobody is queued and an idle resource is ready as it is.
    // No timer, no signal, no closure: one clock read and a Lease.
    if (this.#waiters.length === 0 && inv.idle.length > 0) {
      const lifo = this.#opts.order === "lifo";
      const entry = (lifo ? inv.idle.last() : inv.idle.peek())!;
      const now = this.#clock.now();
      if (inv.retireReason(entry, now) === undefined && !inv.needsValidation(entry, now)) {
        if (lifo) inv.idle.pop();
        else inv.idle.shift();
        return Promise.resolve(this.#lend(entry, 0, site, now));
      }
    }
    return this.#enqueue(signal, timeoutMs ?? this.#opts.acquireTimeoutMs, site);
  }

  /**
   * Runs `fn` with a borrowed resource and gives it back afterwards, also
   * when `fn` throws. An error that `isFatal` recognises destroys the
   * resource instead, and is rethrown without waiting for the destroy.
   * With `reentrant`, a nested `use()` in the same async context gets the
   * outer call's resource.
   */
  async use<T>(
    fn: (resource: R, signal: AbortSignal) => T | Promise<T>,
    options?: AcquireOptions,
  ): Promise<T> {
    const signal = options?.signal ?? NEVER_ABORTED;
    const context = this.#context;
    const outer = context?.getStore();
    if (outer?.active) return await fn(outer.resource, signal);
    const lease = await this.acquire(options);
    const resource = lease.resource;
    let result: T;
    try {
      result = context === undefined
        ? await fn(resource, signal)
        : await context.run(lease, fn, resource, signal);
    } catch (error) {
      if (this.#isFatal(error, resource)) {
        void lease.destroy(`fatal error: ${describeError(error)}`);
      } else await lease.release();
      throw error;
    }
    const released = lease.release();
    if (released !== DONE) await released; // skip a microtask turn when nothing was left to do
    return result;
  }

  /**
   * Runs `fn` over every item with pooled resources, at most
   * `min(concurrency, max)` at once, and yields the results in input order.
   * The first error stops it: nothing more starts, the items in flight see
   * their signal abort, every resource goes back, and the error is thrown.
   */
  map<T, U>(
    items: Iterable<T> | AsyncIterable<T>,
    fn: (resource: R, item: T, signal: AbortSignal) => U | Promise<U>,
    options?: MapOptions,
  ): AsyncGenerator<U, void, undefined> {
    const limit = Math.min(
      count("concurrency", options?.concurrency, this.#opts.max, 1),
      this.#opts.max,
    );
    return mapWithPool(this, items, fn, limit, options);
  }

  /**
   * A stream of what happens in the pool, from now until `signal` aborts,
   * the stream is returned (`break`) or dropped, or the pool closes. Any
   * number of subscribers; a slow one loses its oldest events rather than
   * growing without bound.
   */
  events(options?: EventsOptions): AsyncIterableIterator<PoolEvent> {
    const bufferSize = count("bufferSize", options?.bufferSize, 1024, 1);
    return this.#inv.events.subscribe(bufferSize, options?.signal);
  }

  /** A snapshot of sizes, counters, breaker state and acquire wait times. */
  stats(): PoolStats {
    const inv = this.#inv;
    const size = inv.all.size;
    const idle = inv.idle.length;
    return {
      name: this.#opts.name,
      state: inv.state,
      min: this.#opts.min,
      max: this.#opts.max,
      size,
      idle,
      inUse: size - idle,
      pending: this.#waiters.length,
      creating: this.#creator.creating,
      ...inv.counters,
      breaker: this.#creator.breaker.state,
      acquireWaitMs: this.#waits.percentiles(),
      acquireWaitHistogram: this.#waits.histogram(),
      createTimeHistogram: inv.createTimes.snapshot(),
      useTimeHistogram: this.#useTimes.snapshot(),
    };
  }

  /**
   * Reports every create, acquire, release and timeout to `tracker` as it
   * happens (an exporter such as OpenTelemetry uses this). Returns a
   * function that stops the reports.
   */
  track(tracker: PoolTracker): () => void {
    const inv = this.#inv;
    const trackers = () =>
      inv.tracker instanceof TrackerFanOut
        ? inv.tracker.trackers
        : inv.tracker === undefined
        ? []
        : [inv.tracker];
    const set = (list: readonly PoolTracker[]) => {
      inv.tracker = list.length <= 1 ? list[0] : new TrackerFanOut(list);
    };
    set([...trackers(), tracker]);
    return () => set(trackers().filter((t) => t !== tracker));
  }

  /**
   * Changes the bounds. Growing serves waiters at once; shrinking destroys
   * idle extras now and busy extras when they come back.
   */
  resize(bounds: { min?: number; max?: number }): void {
    const max = count("max", bounds.max, this.#opts.max, 1);
    const min = count("min", bounds.min, Math.min(this.#opts.min, max), 0);
    if (min > max) {
      throw new RangeError(`Pool option 'min' (${min}) must not exceed 'max' (${max})`);
    }
    const maxIdle = this.#opts.maxIdleExplicit ? Math.min(this.#opts.maxIdle, max) : max;
    if (maxIdle < min) {
      throw new RangeError(`Pool option 'min' (${min}) must not exceed 'maxIdle' (${maxIdle})`);
    }
    Object.assign(this.#opts, { min, max, maxIdle });
    const inv = this.#inv;
    while (inv.all.size > max && inv.idle.length > 0) inv.destroy(inv.idle.shift()!, "pool shrunk");
    if (inv.events.active) inv.events.emit({ type: "resize", min, max });
    this.#dispatch(this.#clock.now());
  }

  /**
   * The backend changed (it restarted, or you fixed its credentials):
   * retires every resource that exists now (idle ones at once, lent ones
   * when they come back, none handed out again) and forgets past create
   * failures, closing the circuit breaker so the next create runs at once.
   */
  invalidate(): void {
    const inv = this.#inv;
    inv.generation++;
    for (const entry of inv.idle.drain()) inv.destroy(entry, "invalidated");
    this.#creator.reset();
    this.#dispatch(this.#clock.now());
  }

  /**
   * Closes the pool: waiters get `PoolClosedError`, idle resources are
   * destroyed, lent ones when they come back. With `timeoutMs`, what is
   * still out then is destroyed anyway and the promise resolves then,
   * whatever the hooks do. Idempotent.
   */
  close(options?: CloseOptions): Promise<void> {
    if (this.#closed !== undefined) return this.#closed;
    const timeoutMs = duration("timeoutMs", options?.timeoutMs, Infinity);
    const inv = this.#inv;
    inv.state = "closing";
    this.#housekeeper.stop();
    this.#creator.stop();
    this.#shutdown.abort(this.#closedError());
    this.#waiters.rejectAll(() => this.#closedError());
    this.#readyWaiters.rejectAll(() => this.#closedError());
    for (const entry of inv.idle.drain()) inv.destroy(entry, "pool closed");
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#drained = resolve;
    if (timeoutMs !== Infinity) {
      this.#closeTimer = this.#clock.setTimeout(() => this.#forceClose(), timeoutMs, false);
    }
    this.#closed = promise.then(() => {
      inv.state = "closed";
      inv.events.emit({ type: "close" });
      inv.events.close();
    });
    this.#finishCloseWhenDrained();
    return this.#closed;
  }

  /** Same as {@link Pool.close}: for `await using pool = new Pool(...)`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ---- lending ----------------------------------------------------------------

  #enqueue(signal: AbortSignal | undefined, timeoutMs: number, site: string | undefined) {
    if (this.#waiters.length >= this.#opts.maxWaiting) {
      return Promise.reject(overloadedError(this.#snapshot(), this.#opts.maxWaiting));
    }
    const now = this.#clock.now();
    if (this.#creator.breaker.rejects(now) && this.#inv.idle.length === 0) {
      return Promise.reject(this.#circuitOpenError(now));
    }
    const waiting = this.#waiters.wait(now, signal, timeoutMs, site);
    this.#creator.keepAlive();
    // Under load every resource is out and the pool is full: nothing to decide.
    const inv = this.#inv;
    if (inv.idle.length > 0 || inv.all.size + this.#creator.creating < this.#opts.max) {
      this.#dispatch(now);
    }
    return waiting;
  }

  /** Gives `entry` to the longest waiting caller, in the same tick it leaves the queue. */
  #handOff(entry: Entry<R>, now: number): void {
    const waiter = this.#waiters.next()!;
    waiter.resolve(this.#lend(entry, now - waiter.startedAt, waiter.site, now));
  }

  #lend(entry: Entry<R>, waitedMs: number, site: string | undefined, now: number): Lease<R> {
    const lease = new Lease(this.#owner, entry);
    entry.lend(lease, now, site);
    const inv = this.#inv;
    inv.counters.acquired++;
    this.#waits.record(waitedMs);
    inv.tracker?.acquired(waitedMs);
    if (inv.events.active) inv.events.emit({ type: "acquire", id: entry.id, waitedMs });
    return lease;
  }

  // ---- the one place that decides what happens next ---------------------------

  #dispatch(now: number): void {
    const inv = this.#inv;
    if (inv.state !== "open") return this.#finishCloseWhenDrained();
    const waiters = this.#waiters;
    // Serve waiters from idle. Entries under validation are already promised to a waiter.
    while (waiters.length > this.#validating && inv.idle.length > 0) {
      const entry = inv.takeIdle()!;
      const retire = inv.retireReason(entry, now);
      if (retire !== undefined) inv.destroy(entry, retire);
      else if (inv.needsValidation(entry, now)) this.#validateForWaiter(entry);
      else this.#handOff(entry, now);
    }
    const opts = this.#opts;
    while (inv.idle.length > opts.maxIdle) inv.destroy(inv.idle.shift()!, "above maxIdle");
    // Grow: for waiters nobody is serving yet, then up to min.
    const creating = this.#creator.creating;
    const wanted = Math.max(
      waiters.length - this.#validating - creating,
      opts.min - inv.all.size - creating,
    );
    if (wanted > 0) this.#creator.grow(wanted, now);
    if (this.#readyWaiters.length > 0 && inv.all.size >= opts.min) {
      for (let w = this.#readyWaiters.next(); w !== undefined; w = this.#readyWaiters.next()) {
        w.resolve();
      }
    }
  }

  // ---- what the creator and the housekeeper report ------------------------------

  #placeCreated(resource: R, now: number): void {
    const inv = this.#inv;
    const entry = inv.add(resource, now);
    // A create that outlived its waiter still lands: in the pool, not on the floor.
    if (inv.state !== "open") inv.destroy(entry, "pool closed");
    else if (this.#waiters.length > this.#validating) this.#handOff(entry, now);
    else inv.idle.push(entry);
    this.#dispatch(now);
  }

  #createFailed(error: unknown, now: number, opened: boolean): void {
    if (this.#waiters.length === 0 && this.#readyWaiters.length === 0) {
      this.#inv.backgroundError("create", error); // a top-up to min: nobody else will hear of it
    }
    if (opened) {
      this.#waiters.rejectAll(() => this.#circuitOpenError(now));
      this.#readyWaiters.rejectAll(() => this.#circuitOpenError(now));
    }
    this.#dispatch(now);
  }

  /** Validates an entry taken from idle for a waiter, then hands it over (or back to idle). */
  async #validateForWaiter(entry: Entry<R>): Promise<void> {
    entry.startCheck(VALIDATING);
    this.#validating++;
    const valid = await this.#inv.validate(entry, this.#shutdown.signal, false);
    this.#validating--;
    this.#checked(entry, valid);
  }

  /** A check finished: destroy the entry, hand it to a waiter, or put it back idle. */
  #checked(entry: Entry<R>, valid: boolean): void {
    const now = this.#clock.now();
    if (entry.state === REMOVED) return this.#dispatch(now); // a forced close took it
    const inv = this.#inv;
    const retire = valid ? inv.retireReason(entry, now) : "failed validation";
    if (retire !== undefined) inv.destroy(entry, retire);
    else if (this.#waiters.length > this.#validating) this.#handOff(entry, now);
    else {
      entry.checked(now);
      inv.idle.push(entry);
    }
    this.#dispatch(now);
  }

  // ---- giving back -------------------------------------------------------------

  #giveBack(entry: Entry<R>, lease: Lease<R>, reuse: boolean, reason: string): Promise<void> {
    if (entry.lease !== lease) return DONE; // already taken back by a forced close
    entry.endLease();
    const inv = this.#inv;
    inv.counters.released++;
    if (inv.events.active) inv.events.emit({ type: "release", id: entry.id });
    const now = this.#clock.now();
    const heldMs = now - entry.acquiredAt;
    this.#useTimes.record(heldMs);
    inv.tracker?.released(heldMs);
    const retire = reuse ? inv.retireReason(entry, now) : reason;
    if (retire !== undefined) {
      const destroyed = inv.destroy(entry, retire);
      this.#dispatch(now);
      return destroyed;
    }
    if (inv.factory.reset !== undefined) return this.#resetThenReturn(entry);
    this.#returned(entry, now);
    return DONE;
  }

  /** Back from a lease and clean: straight to a waiter if one waits, else idle. */
  #returned(entry: Entry<R>, now: number): void {
    entry.returned(now);
    const inv = this.#inv;
    if (this.#waiters.length > this.#validating && !inv.needsValidation(entry, now)) {
      this.#handOff(entry, now);
    } else {
      inv.idle.push(entry);
      // Nobody waits and nothing is missing: nothing else to decide (the common case).
      if (this.#waiters.length === 0 && inv.idle.length <= this.#opts.maxIdle) return;
    }
    this.#dispatch(now);
  }

  async #resetThenReturn(entry: Entry<R>): Promise<void> {
    const inv = this.#inv;
    try {
      const reset = inv.factory.reset!;
      await callHook(this.#clock, "reset", this.#opts.hookTimeoutMs, () => reset(entry.resource));
    } catch (error) {
      inv.backgroundError("reset", error);
      const destroyed = inv.destroy(entry, "reset failed");
      this.#dispatch(this.#clock.now());
      return destroyed;
    }
    if (entry.state === REMOVED) return; // a forced close took it meanwhile
    if (inv.state !== "open") return inv.destroy(entry, "pool closed");
    this.#returned(entry, this.#clock.now());
  }

  #isFatal(error: unknown, resource: R): boolean {
    const isFatal = this.#inv.factory.isFatal;
    if (isFatal === undefined) return false;
    try {
      return isFatal(error, resource) === true;
    } catch (thrown) {
      this.#inv.backgroundError("isFatal", thrown);
      return true; // a classifier that breaks cannot vouch for the resource
    }
  }

  // ---- closing -------------------------------------------------------------------

  #forceClose(): void {
    this.#forced = true;
    for (const entry of [...this.#inv.all]) this.#inv.destroy(entry, "close timed out");
    this.#finishCloseWhenDrained();
  }

  /** Resolves `close()` once nothing is out, or at its deadline whatever is still running. */
  #finishCloseWhenDrained(): void {
    const inv = this.#inv;
    const drained = inv.all.size === 0 && this.#creator.creating === 0 &&
      inv.destroying.size === 0;
    if (this.#drained === undefined || !(this.#forced || drained)) return;
    this.#clock.clearTimeout(this.#closeTimer);
    const resolve = this.#drained;
    this.#drained = undefined;
    resolve();
  }

  // ---- errors --------------------------------------------------------------------

  #snapshot() {
    return this.#inv.snapshot(this.#waiters.length);
  }

  #timeoutError(what: string, timeoutMs: number, waitedMs: number) {
    return timeoutError(this.#snapshot(), what, timeoutMs, waitedMs, this.#creator.failure);
  }

  #circuitOpenError(now: number) {
    const retryAfterMs = this.#creator.breaker.retryAfterMs(now);
    return circuitOpenError(this.#snapshot(), retryAfterMs, this.#creator.failure);
  }

  #closedError(): PoolClosedError {
    return closedError(this.#opts.name, this.#inv.state);
  }
}

function badTimeout(value: unknown): RangeError {
  try {
    duration("timeoutMs", value, 0);
  } catch (error) {
    return error as RangeError;
  }
  return new RangeError(`Pool option 'timeoutMs' is invalid: ${value}`);
}

function acquireSite(): string {
  return new Error("lease acquired here").stack ?? "";
}

import { AsyncLocalStorage } from "node:async_hooks";
import { CLOCK, type Clock, systemClock, type Timer, type WithClock } from "./clock.ts";
import { Creator } from "./creator.ts";
import { type Entry, type Lease, REMOVED } from "./entry.ts";
import { describeError } from "./errors.ts";
import { Housekeeper } from "./housekeeper.ts";
import { DONE, Inventory, type PoolLoop } from "./inventory.ts";
import { type GiveBack, Lender } from "./lender.ts";
import { mapWithPool } from "./map.ts";
import { DurationHistogram, timingsOf } from "./metrics.ts";
import {
  badTimeout,
  CLOSE_OPTIONS,
  count,
  duration,
  EVENTS_OPTIONS,
  MAP_OPTIONS,
  type OptionOwner,
  rejectUnknownOptions,
  resizedBounds,
  resolveOptions,
} from "./options.ts";
import type { ResolvedOptions } from "./options.ts";
import type {
  AcquireOptions,
  CloseOptions,
  EventsOptions,
  MapOptions,
  PoolEvent,
  PoolOptions,
  PoolStats,
  PoolTracker,
} from "./types.ts";

const NEVER_ABORTED = new AbortController().signal;

/**
 * An async resource pool: keeps up to `max` expensive resources (sessions,
 * connections) alive and lends them to concurrent tasks one at a time.
 *
 * The resources and counters live in an `Inventory`; callers wait in the
 * `Lender`; the `Creator` makes resources and handles their failures; the
 * `Housekeeper` runs the background jobs. They hand control back through
 * one `PoolLoop`, and leases through their `LeaseOwner`. After every change
 * `#dispatch()` matches idle resources to waiters and asks for creates, so
 * there is one place where the pool decides what to do next.
 *
 * After `close()` resolves nothing of the pool runs or is scheduled; while
 * it is open and nobody waits, its only timer is the housekeeping one,
 * which does not keep the process alive.
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
  readonly #lender: Lender<R>;
  readonly #creator: Creator<R>;
  readonly #housekeeper: Housekeeper<R>;
  readonly #useTimes = new DurationHistogram();
  readonly #context: AsyncLocalStorage<Lease<R>> | undefined;
  readonly #shutdown = new AbortController(); // the signal `create` and `validate` get
  #trackers: readonly PoolTracker[] = [];
  #closing: Closing | undefined;
  #closed: Promise<void> | undefined;

  /**
   * Checks the options (throwing a `TypeError` or `RangeError` that names
   * the bad or unknown one) and starts the pool.
   */
  constructor(options: PoolOptions<R>) {
    this.#opts = resolveOptions(options);
    this.#clock = (options as WithClock)[CLOCK] ?? systemClock;
    const loop: PoolLoop<R> = {
      dispatch: (now) => this.#dispatch(now),
      checked: (entry, valid) => this.#checked(entry, valid),
      created: (resource, now) => (this.#lender.placeCreated(resource, now), this.#dispatch(now)),
      createFailed: (error, now, opened) => (
        this.#lender.createFailed(error, now, opened), this.#dispatch(now)
      ),
      hasWaiters: () => this.#lender.anyoneWaits,
    };
    const inv = this.#inv = new Inventory(this.#opts, options, this.#clock, loop);
    this.#context = this.#opts.reentrant ? new AsyncLocalStorage() : undefined;
    const shutdown = this.#shutdown.signal;
    this.#creator = new Creator(inv, shutdown, loop);
    const giveBack: GiveBack<R> = (entry, lease, reuse, reason) =>
      this.#giveBack(entry, lease, reuse, reason);
    this.#lender = new Lender(inv, giveBack, this.#creator);
    this.#housekeeper = new Housekeeper(inv, shutdown, loop);
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
    let timeoutMs: number;
    try {
      timeoutMs = duration("timeoutMs", options?.timeoutMs, this.#opts.acquireTimeoutMs, "ready()");
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#inv.state !== "open") return Promise.reject(this.#lender.closedError());
    if (this.#inv.all.size >= this.#opts.min) return DONE;
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return this.#lender.waitReady(this.#clock.now(), signal, timeoutMs);
  }

  /**
   * Borrows a resource. Resolves with a {@link Lease}; release it (or use
   * `await using`) to give the resource back. Rejects with
   * `PoolTimeoutError`, `CircuitOpenError`, `PoolOverloadedError`,
   * `PoolClosedError`, a `RangeError` for a bad `timeoutMs`, or the
   * signal's reason when `signal` aborts.
   */
  acquire(options?: AcquireOptions): Promise<Lease<R>> {
    return this.#acquire(options, "acquire()");
  }

  // Unknown keys are let through here: adapters pass their own per-call options, which extend
  // these (a deadline for a whole call), down to acquire() and use().
  #acquire(options: AcquireOptions | undefined, call: OptionOwner): Promise<Lease<R>> {
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const inv = this.#inv;
    if (inv.state !== "open") return Promise.reject(this.#lender.closedError());
    const timeoutMs = options?.timeoutMs;
    if (timeoutMs !== undefined && !(typeof timeoutMs === "number" && timeoutMs >= 0)) {
      return Promise.reject(badTimeout(timeoutMs, call));
    }
    const opts = this.#opts;
    const site = opts.leakDetectionMs > 0 ? acquireSite() : undefined;
    // Fast path: nobody is queued and an idle resource is ready as it is.
    // No timer, no signal, no closure: one clock read and a Lease.
    const idle = inv.idle;
    if (idle.length > 0 && this.#lender.waiters.length === 0) {
      const lifo = opts.order === "lifo";
      const entry = (lifo ? idle.last() : idle.peek())!;
      const now = this.#clock.now();
      if (inv.retireReason(entry, now) === undefined && !inv.needsValidation(entry, now)) {
        if (lifo) idle.pop();
        else idle.shift();
        return Promise.resolve(this.#lender.lend(entry, 0, site, now));
      }
    }
    return this.#enqueue(signal, timeoutMs ?? opts.acquireTimeoutMs, site);
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
    const lease = await this.#acquire(options, "use()");
    const resource = lease.resource;
    let result: T;
    try {
      result = context === undefined
        ? await fn(resource, signal)
        : await context.run(lease, fn, resource, signal);
    } catch (error) {
      if (this.#inv.isFatal(error, resource)) {
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
    if (options) rejectUnknownOptions("map()", options, MAP_OPTIONS);
    duration("timeoutMs", options?.timeoutMs, 0, "map()");
    const limit = Math.min(
      count("concurrency", options?.concurrency, this.#opts.max, 1, "map()"),
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
    if (options) rejectUnknownOptions("events()", options, EVENTS_OPTIONS);
    const bufferSize = count("bufferSize", options?.bufferSize, 1024, 1, "events()");
    return this.#inv.events.subscribe(bufferSize, options?.signal);
  }

  /**
   * A snapshot of sizes, counters, breaker state and acquire wait times.
   * Durations are in milliseconds, rounded to the microsecond.
   */
  stats(): PoolStats {
    const inv = this.#inv;
    const lender = this.#lender;
    const size = inv.all.size;
    const idle = inv.idle.length;
    return {
      name: inv.opts.name,
      state: inv.state,
      min: inv.opts.min,
      max: inv.opts.max,
      maxIdle: inv.opts.maxIdle,
      size,
      idle,
      inUse: size - idle,
      pending: lender.waiters.length,
      creating: this.#creator.creating,
      ...inv.counters,
      breaker: this.#creator.breaker.state,
      acquireWaitMs: lender.waits.percentiles(),
      acquireWaitHistogram: lender.waits.histogram(),
      createTimeHistogram: inv.createTimes.snapshot(),
      useTimeHistogram: this.#useTimes.snapshot(),
    };
  }

  /**
   * Reports every create, acquire, release and timeout to `tracker` as it
   * happens, and the pool's close (an exporter such as OpenTelemetry uses
   * this). Returns a function that stops the reports.
   */
  track(tracker: PoolTracker): () => void {
    this.#setTrackers([...this.#trackers, tracker]);
    return () => this.#setTrackers(this.#trackers.filter((t) => t !== tracker));
  }

  #setTrackers(trackers: readonly PoolTracker[]): void {
    this.#trackers = trackers;
    this.#inv.tracker = timingsOf(trackers);
  }

  /**
   * Changes the bounds. Growing serves waiters at once; shrinking destroys
   * idle extras now and busy extras when they come back.
   */
  resize(bounds: { min?: number; max?: number }): void {
    if (this.#inv.state !== "open") throw this.#lender.closedError();
    const { min, max, maxIdle } = resizedBounds(this.#opts, bounds);
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
    if (options) rejectUnknownOptions("close()", options, CLOSE_OPTIONS);
    const timeoutMs = duration("timeoutMs", options?.timeoutMs, Infinity, "close()");
    const inv = this.#inv;
    inv.state = "closing";
    this.#housekeeper.stop();
    this.#creator.stop();
    this.#shutdown.abort(this.#lender.closedError());
    this.#lender.rejectAll(() => this.#lender.closedError());
    for (const entry of inv.idle.drain()) inv.destroy(entry, "pool closed");
    const closing = this.#closing = new Closing(this.#clock, timeoutMs, () => {
      for (const entry of [...inv.all]) inv.destroy(entry, "close timed out");
    });
    this.#closed = closing.done.then(() => {
      if (closing.forced) inv.abandonDestroys();
      inv.state = "closed";
      for (const tracker of this.#trackers) {
        try {
          tracker.closed?.();
        } catch (error) {
          inv.backgroundError("tracker", error);
        }
      }
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

  // ---- waiting -------------------------------------------------------------------

  #enqueue(signal: AbortSignal | undefined, timeoutMs: number, site: string | undefined) {
    const now = this.#clock.now();
    const waiting = this.#lender.enqueue(now, signal, timeoutMs, site);
    // Under load every resource is out and the pool is full: nothing to decide.
    const inv = this.#inv;
    if (inv.idle.length > 0 || inv.all.size + this.#creator.creating < this.#opts.max) {
      this.#dispatch(now);
    }
    return waiting;
  }

  // ---- the one place that decides what happens next ---------------------------

  #dispatch(now: number): void {
    const inv = this.#inv;
    if (inv.state !== "open") return this.#finishCloseWhenDrained();
    const lender = this.#lender;
    if (inv.all.size === 0) lender.failFastIfNothingServes(now, false);
    // Serve waiters from idle. Entries under validation are already promised to a waiter.
    while (lender.unserved > 0 && inv.idle.length > 0) {
      const entry = inv.takeIdle()!;
      const retire = inv.retireReason(entry, now);
      if (retire !== undefined) inv.destroy(entry, retire);
      else if (inv.needsValidation(entry, now)) {
        lender.validateFor(entry, this.#shutdown.signal).then((ok) => this.#checked(entry, ok));
      } else lender.handOff(entry, now);
    }
    const opts = this.#opts;
    while (inv.idle.length > opts.maxIdle) inv.destroy(inv.idle.shift()!, "above maxIdle");
    // Grow: for waiters nobody is serving yet, then up to min.
    const creating = this.#creator.creating;
    const wanted = Math.max(lender.unserved - creating, opts.min - inv.all.size - creating);
    if (wanted > 0) this.#creator.grow(now, lender.anyoneWaits);
    lender.resolveReady();
  }

  // ---- what the creator and the checks report -----------------------------------

  #checked(entry: Entry<R>, valid: boolean): void {
    const now = this.#clock.now();
    this.#lender.checked(entry, valid, now);
    this.#dispatch(now);
  }

  // ---- giving back -------------------------------------------------------------

  #giveBack(entry: Entry<R>, lease: number, reuse: boolean, reason: string): Promise<void> {
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
    const lender = this.#lender;
    // Either way the size did not change, so there is nothing to grow: when the entry went
    // straight to a waiter, or went idle with nobody waiting, nothing else is left to decide.
    if (lender.unserved > 0 && !inv.needsValidation(entry, now)) return lender.handOff(entry, now);
    inv.idle.push(entry);
    if (lender.waiters.length === 0 && inv.idle.length <= this.#opts.maxIdle) return;
    this.#dispatch(now);
  }

  async #resetThenReturn(entry: Entry<R>): Promise<void> {
    const inv = this.#inv;
    if (!await inv.reset(entry)) {
      const destroyed = inv.destroy(entry, "reset failed");
      this.#dispatch(this.#clock.now());
      return destroyed;
    }
    if (entry.state === REMOVED) return; // a forced close took it meanwhile
    if (inv.state !== "open") return inv.destroy(entry, "pool closed");
    this.#returned(entry, this.#clock.now());
  }

  /** Resolves `close()` once nothing is out any more (or its deadline passed). */
  #finishCloseWhenDrained(): void {
    const inv = this.#inv;
    const drained = inv.all.size === 0 && this.#creator.creating === 0;
    this.#closing?.finish(drained && inv.destroying.size === 0);
  }
}

/**
 * The end of `close()`: resolves once the pool has drained, or at the
 * caller's deadline whatever is still running (leases, hooks). Knows
 * nothing of resources; the pool says when it drained.
 */
class Closing {
  /** Resolves when the close is done. */
  readonly done: Promise<void>;
  #resolve: (() => void) | undefined;
  #timer: Timer | undefined;
  /** Whether the deadline passed (what is still out was destroyed). */
  forced = false;

  /** Starts the clock on `timeoutMs`; at the deadline `onDeadline` runs, then it resolves. */
  constructor(readonly clock: Clock, timeoutMs: number, onDeadline: () => void) {
    const { promise, resolve } = Promise.withResolvers<void>();
    this.done = promise;
    this.#resolve = resolve;
    if (timeoutMs === Infinity) return;
    this.#timer = clock.setTimeout(
      () => {
        this.forced = true;
        onDeadline();
        this.finish(true);
      },
      timeoutMs,
      false,
    );
  }

  /** Resolves `done` if the pool `drained` or the deadline passed. Idempotent. */
  finish(drained: boolean): void {
    if (this.#resolve === undefined || !(drained || this.forced)) return;
    this.clock.clearTimeout(this.#timer);
    const resolve = this.#resolve;
    this.#resolve = undefined;
    resolve();
  }
}

function acquireSite(): string {
  return new Error("lease acquired here").stack ?? "";
}

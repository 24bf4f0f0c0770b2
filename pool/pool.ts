import { AsyncLocalStorage } from "node:async_hooks";
import { backoffDelayMs } from "./backoff.ts";
import { CircuitBreaker } from "./breaker.ts";
import { now as clock } from "./clock.ts";
import { Deque } from "./deque.ts";
import { Entry, type EntryState, IDLE, IN_USE, REMOVED, VALIDATING } from "./entry.ts";
import {
  CircuitOpenError,
  PoolClosedError,
  PoolOverloadedError,
  PoolTimeoutError,
} from "./errors.ts";
import { EventHub } from "./events.ts";
import { Lease, type LeaseOwner } from "./lease.ts";
import { mapWithPool } from "./map.ts";
import { count, duration, type ResolvedOptions, resolveOptions } from "./options.ts";
import type {
  AcquireOptions,
  CloseOptions,
  EventsOptions,
  MapOptions,
  PoolEvent,
  PoolOptions,
  PoolState,
  PoolStats,
  ResourceFactory,
} from "./types.ts";
import { type Timer, WaitQueue } from "./waiters.ts";
import { type PoolTracker, TrackerFanOut } from "./tracker.ts";
import { DurationHistogram, WaitStats } from "./wait_stats.ts";

const NEVER_ABORTED = new AbortController().signal;
const DONE = Promise.resolve();
/** A validation that has not answered by then counts as failed (HikariCP's validationTimeout). */
const VALIDATION_TIMEOUT_MS = 5_000;
const LIFETIME_JITTER = 0.02; // up to 2% earlier, so resources made together do not all expire together

/**
 * An async resource pool: keeps up to `max` expensive resources (sessions,
 * connections) alive and lends them to concurrent tasks one at a time.
 *
 * The state is a handful of fields: every resource is in `#all`; the idle
 * ones also wait in `#idle`; callers wait in `#waiters`; `#creating` and
 * `#validating` count work under way. After every change `#dispatch()`
 * matches idle resources to waiters and starts creates, so there is one
 * place where the pool decides what to do next.
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
  readonly #factory: ResourceFactory<R>;
  #state: PoolState = "open";
  readonly #all = new Set<Entry<R>>();
  readonly #idle = new Deque<Entry<R>>();
  readonly #waiters: WaitQueue<Lease<R>>;
  #creating = 0;
  #validating = 0;
  #generation = 0;

  readonly #breaker: CircuitBreaker;
  readonly #counters = {
    created: 0,
    destroyed: 0,
    acquired: 0,
    released: 0,
    timedOut: 0,
    aborted: 0,
    createErrors: 0,
    leaks: 0,
    errors: 0,
  };
  readonly #waits = new WaitStats();
  readonly #createTimes = new DurationHistogram();
  readonly #useTimes = new DurationHistogram();
  #tracker: PoolTracker | undefined = undefined;
  readonly #events = new EventHub<PoolEvent>();
  readonly #owner: LeaseOwner<R>;
  readonly #context: AsyncLocalStorage<Lease<R>> | undefined;
  readonly #shutdown = new AbortController(); // the signal `create` and `validate` get
  readonly #destroying = new Set<Promise<void>>();
  readonly #readyWaiters: WaitQueue<void>;
  #housekeeper: Timer;
  #retryTimer: Timer | undefined;
  #lastHealthCheck = 0;
  #nextId = 1;
  #closed: Promise<void> | undefined;
  #drained: (() => void) | undefined;
  #closeTimer: Timer | undefined;
  #forced = false;

  /** Checks the options (throwing `TypeError`/`RangeError` naming the bad one) and starts the pool. */
  constructor(options: PoolOptions<R>) {
    this.#opts = resolveOptions(options);
    const { create, destroy, validate, reset, isFatal, isPermanent } = options;
    this.#factory = { create, destroy, validate, reset, isFatal, isPermanent };
    this.#breaker = new CircuitBreaker(this.#opts.breakerThreshold, this.#opts.breakerCooldownMs);
    this.#owner = {
      name: this.#opts.name,
      giveBack: (entry, lease, reuse, reason) => this.#giveBack(entry, lease, reuse, reason),
    };
    this.#context = this.#opts.reentrant ? new AsyncLocalStorage() : undefined;
    this.#waiters = new WaitQueue({
      timeoutError: (startedAt) => this.#timeoutError(startedAt, "resource"),
      gaveUp: (reason, waitedMs) => {
        if (reason === "abort") return void this.#counters.aborted++;
        this.#counters.timedOut++;
        this.#tracker?.timedOut();
        if (this.#events.active) this.#events.emit({ type: "timeout", waitedMs });
      },
    });
    this.#readyWaiters = new WaitQueue({
      timeoutError: (startedAt) =>
        this.#timeoutError(startedAt, `${this.#opts.min} (min) resources ready`),
      gaveUp: () => {},
    });
    this.#housekeeper = setInterval(() => this.#housekeep(), housekeepingPeriodMs(this.#opts));
    Deno.unrefTimer(this.#housekeeper);
    this.#dispatch();
  }

  /** The pool's name, as given in the options. */
  get name(): string {
    return this.#opts.name;
  }

  /**
   * Resolves once `min` resources exist. Rejects like `acquire()` would:
   * `PoolTimeoutError` (with the last create failure as `cause`),
   * `CircuitOpenError`, `PoolClosedError`, or the signal's reason.
   */
  ready(options?: AcquireOptions): Promise<void> {
    if (this.#state !== "open") return Promise.reject(this.#closedError());
    if (this.#all.size >= this.#opts.min) return DONE;
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const timeoutMs = duration("timeoutMs", options?.timeoutMs, this.#opts.acquireTimeoutMs);
    return this.#readyWaiters.wait(clock(), signal, timeoutMs);
  }

  /**
   * Borrows a resource. Resolves with a {@link Lease}; release it (or use
   * `await using`) to give the resource back. Rejects with
   * `PoolTimeoutError`, `CircuitOpenError`, `PoolOverloadedError`,
   * `PoolClosedError`, or the signal's reason when `signal` aborts.
   */
  acquire(options?: AcquireOptions): Promise<Lease<R>> {
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#state !== "open") return Promise.reject(this.#closedError());
    const site = this.#opts.leakDetectionMs > 0 ? acquireSite() : undefined;
    // Fast path: nobody is queued and an idle resource is ready as it is.
    // No timer, no signal, no closure: one lookup and a Lease.
    if (this.#waiters.length === 0 && this.#idle.length > 0) {
      const lifo = this.#opts.order === "lifo";
      const entry = (lifo ? this.#idle.last() : this.#idle.peek()) as Entry<R>;
      const now = clock();
      if (this.#retireReason(entry, now) === undefined && !this.#needsValidation(entry, now)) {
        if (lifo) this.#idle.pop();
        else this.#idle.shift();
        return Promise.resolve(this.#lend(entry, 0, site, now));
      }
    }
    return this.#enqueue(signal, options?.timeoutMs, site);
  }

  /**
   * Runs `fn` with a borrowed resource and gives it back afterwards, also
   * when `fn` throws. An error that `isFatal` recognises destroys the
   * resource instead. With `reentrant`, a nested `use()` in the same async
   * context gets the outer call's resource.
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
      if (this.#isFatal(error, resource)) await lease.destroy(`fatal error: ${describe(error)}`);
      else await lease.release();
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
   * A stream of what happens in the pool, from now until `signal` aborts or
   * the pool closes. Any number of subscribers; a slow one loses its oldest
   * events rather than growing without bound.
   */
  events(options?: EventsOptions): AsyncIterableIterator<PoolEvent> {
    const bufferSize = count("bufferSize", options?.bufferSize, 1024, 1);
    return this.#events.subscribe(bufferSize, options?.signal);
  }

  /** A snapshot of sizes, counters, breaker state and acquire wait times. */
  stats(): PoolStats {
    const size = this.#all.size;
    const idle = this.#idle.length;
    return {
      name: this.#opts.name,
      state: this.#state,
      min: this.#opts.min,
      max: this.#opts.max,
      size,
      idle,
      inUse: size - idle,
      pending: this.#waiters.length,
      creating: this.#creating,
      ...this.#counters,
      breaker: this.#breaker.state,
      acquireWaitMs: this.#waits.percentiles(),
      acquireWaitHistogram: this.#waits.histogram(),
      createTimeHistogram: this.#createTimes.snapshot(),
      useTimeHistogram: this.#useTimes.snapshot(),
    };
  }

  /**
   * Reports every create, acquire, release and timeout to `tracker` as it
   * happens (an exporter such as OpenTelemetry uses this). Returns a
   * function that stops the reports.
   */
  track(tracker: PoolTracker): () => void {
    const trackers = () =>
      this.#tracker instanceof TrackerFanOut
        ? this.#tracker.trackers
        : this.#tracker === undefined
        ? []
        : [this.#tracker];
    const set = (list: readonly PoolTracker[]) => {
      this.#tracker = list.length === 0
        ? undefined
        : list.length === 1
        ? list[0]
        : new TrackerFanOut(list);
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
    while (this.#all.size > max && this.#idle.length > 0) {
      this.#destroy(this.#idle.shift() as Entry<R>, "pool shrunk");
    }
    if (this.#events.active) this.#events.emit({ type: "resize", min, max });
    this.#dispatch();
  }

  /**
   * Retires every resource that exists now (the backend restarted): idle
   * ones are destroyed at once, lent ones when they come back, and none of
   * them is handed out again.
   */
  invalidate(): void {
    this.#generation++;
    for (const entry of this.#idle.drain()) this.#destroy(entry, "invalidated");
    this.#dispatch();
  }

  /**
   * Closes the pool: waiters get `PoolClosedError`, idle resources are
   * destroyed, lent ones when they come back. With `timeoutMs`, what is
   * still out then is destroyed anyway. Idempotent.
   */
  close(options?: CloseOptions): Promise<void> {
    if (this.#closed !== undefined) return this.#closed;
    const timeoutMs = duration("timeoutMs", options?.timeoutMs, Infinity);
    this.#state = "closing";
    clearInterval(this.#housekeeper);
    clearTimeout(this.#retryTimer);
    this.#shutdown.abort(this.#closedError());
    this.#waiters.rejectAll(() => this.#closedError());
    this.#readyWaiters.rejectAll(() => this.#closedError());
    for (const entry of this.#idle.drain()) this.#destroy(entry, "pool closed");
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#drained = resolve;
    if (timeoutMs !== Infinity) this.#closeTimer = setTimeout(() => this.#forceClose(), timeoutMs);
    this.#closed = promise.then(() => {
      this.#state = "closed";
      this.#events.emit({ type: "close" });
      this.#events.close();
    });
    this.#dispatch();
    return this.#closed;
  }

  /** Same as {@link Pool.close}: for `await using pool = new Pool(...)`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ---- waiting ---------------------------------------------------------------

  #enqueue(signal: AbortSignal | undefined, timeout: number | undefined, site: string | undefined) {
    const pending = this.#waiters.length;
    if (pending >= this.#opts.maxWaiting) {
      return Promise.reject(
        new PoolOverloadedError(
          `Pool '${this.#opts.name}' has ${pending} callers waiting, the most 'maxWaiting' allows: ` +
            `shed load or raise maxWaiting ${this.#snapshot()}`,
          pending,
        ),
      );
    }
    const now = clock();
    if (this.#breaker.rejects(now) && this.#idle.length === 0) {
      return Promise.reject(this.#circuitOpenError(now));
    }
    let timeoutMs: number;
    try {
      timeoutMs = duration("timeoutMs", timeout, this.#opts.acquireTimeoutMs);
    } catch (error) {
      return Promise.reject(error);
    }
    const waiting = this.#waiters.wait(now, signal, timeoutMs, site);
    if (this.#retryTimer !== undefined) Deno.refTimer(this.#retryTimer);
    this.#dispatch(now);
    return waiting;
  }

  /** Gives `entry` to the longest waiting caller, in the same tick it leaves the queue. */
  #handOff(entry: Entry<R>, now: number): void {
    const waiter = this.#waiters.next()!;
    waiter.resolve(this.#lend(entry, now - waiter.startedAt, waiter.site, now));
  }

  #lend(entry: Entry<R>, waitedMs: number, site: string | undefined, now: number): Lease<R> {
    entry.state = IN_USE;
    entry.uses++;
    this.#counters.acquired++;
    this.#waits.record(waitedMs);
    this.#tracker?.acquired(waitedMs);
    const lease = new Lease(this.#owner, entry);
    entry.lease = lease;
    entry.acquiredAt = now;
    if (site !== undefined) {
      entry.acquireSite = site;
      entry.leakReported = false;
    }
    if (this.#events.active) this.#events.emit({ type: "acquire", id: entry.id, waitedMs });
    return lease;
  }

  // ---- the one place that decides what happens next ---------------------------

  #dispatch(now: number = clock()): void {
    if (this.#state !== "open") return this.#finishCloseWhenDrained();
    // Serve waiters from idle. Entries under validation are already promised to a waiter.
    while (this.#waiters.length > this.#validating && this.#idle.length > 0) {
      const entry = (this.#opts.order === "lifo" ? this.#idle.pop() : this.#idle.shift()) as Entry<
        R
      >;
      const retire = this.#retireReason(entry, now);
      if (retire !== undefined) this.#destroy(entry, retire);
      else if (this.#needsValidation(entry, now)) this.#validateThenHandOff(entry);
      else this.#handOff(entry, now);
    }
    while (this.#idle.length > this.#opts.maxIdle) {
      this.#destroy(this.#idle.shift() as Entry<R>, "above maxIdle");
    }
    // Grow: for waiters nobody is serving yet, then up to min.
    let wanted = Math.max(
      this.#waiters.length - this.#validating - this.#creating,
      this.#opts.min - this.#all.size - this.#creating,
    );
    while (
      wanted-- > 0 && this.#all.size + this.#creating < this.#opts.max &&
      this.#retryTimer === undefined && this.#allowCreate(now)
    ) this.#startCreate();
    if (this.#readyWaiters.length > 0 && this.#all.size >= this.#opts.min) {
      for (let w = this.#readyWaiters.next(); w !== undefined; w = this.#readyWaiters.next()) {
        w.resolve();
      }
    }
  }

  #allowCreate(now: number): boolean {
    const before = this.#breaker.state;
    const allowed = this.#breaker.allowCreate(now);
    if (before !== this.#breaker.state && this.#events.active) {
      this.#events.emit({ type: "breaker", state: this.#breaker.state });
    }
    return allowed;
  }

  // ---- creating --------------------------------------------------------------

  #startCreate(): void {
    this.#creating++;
    const startedAt = clock();
    let creation: Promise<R>;
    try {
      creation = Promise.resolve(this.#factory.create(this.#shutdown.signal));
    } catch (error) {
      creation = Promise.reject(error);
    }
    creation.then(
      (resource) => this.#onCreated(resource, startedAt),
      (error) => this.#onCreateFailed(error, startedAt),
    );
  }

  #onCreated(resource: R, startedAt: number): void {
    this.#creating--;
    const now = clock();
    this.#createTimes.record(now - startedAt);
    this.#tracker?.created(now - startedAt, true);
    if (this.#breaker.recordSuccess() && this.#events.active) {
      this.#events.emit({ type: "breaker", state: "closed" });
    }
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const lifetime = this.#opts.maxLifetimeMs * (1 - Math.random() * LIFETIME_JITTER);
    const entry = new Entry(this.#nextId++, resource, now, now + lifetime, this.#generation);
    this.#all.add(entry);
    this.#counters.created++;
    if (this.#events.active) this.#events.emit({ type: "create", id: entry.id });
    // A create that outlived its waiter still lands: in the pool, not on the floor.
    if (this.#state !== "open") this.#destroy(entry, "pool closed");
    else if (this.#waiters.length > this.#validating) this.#handOff(entry, now);
    else this.#makeIdle(entry, now);
    this.#dispatch(now);
  }

  #onCreateFailed(error: unknown, startedAt: number): void {
    this.#creating--;
    const failedAt = clock();
    this.#createTimes.record(failedAt - startedAt);
    this.#tracker?.created(failedAt - startedAt, false);
    this.#counters.createErrors++;
    if (this.#events.active) this.#events.emit({ type: "createError", error });
    if (this.#state !== "open") return this.#dispatch();
    const now = clock();
    if (this.#breaker.recordFailure(error, now)) {
      if (this.#events.active) this.#events.emit({ type: "breaker", state: "open", cause: error });
      clearTimeout(this.#retryTimer);
      this.#retryTimer = undefined;
      this.#waiters.rejectAll(() => this.#circuitOpenError(now));
      this.#readyWaiters.rejectAll(() => this.#circuitOpenError(now));
    } else if (this.#retryTimer === undefined) {
      // Retry later, not now: a backend that refuses us must not be hammered.
      const timer = setTimeout(this.#retry, backoffDelayMs(this.#breaker.failures));
      this.#retryTimer = timer;
      // Only a waiting caller keeps the process alive, not a background top-up.
      if (this.#waiters.length === 0) Deno.unrefTimer(timer);
    }
    this.#dispatch(now);
  }

  #retry = (): void => {
    this.#retryTimer = undefined;
    this.#dispatch();
  };

  // ---- giving back, checking, destroying ---------------------------------------

  #giveBack(entry: Entry<R>, lease: Lease<R>, reuse: boolean, reason: string): Promise<void> {
    if (entry.lease !== lease) return DONE; // already taken back by a forced close
    entry.lease = undefined;
    entry.acquireSite = undefined;
    this.#counters.released++;
    if (this.#events.active) this.#events.emit({ type: "release", id: entry.id });
    const now = clock();
    this.#useTimes.record(now - entry.acquiredAt);
    this.#tracker?.released(now - entry.acquiredAt);
    const retire = reuse ? this.#retireReason(entry, now) : reason;
    if (retire !== undefined) {
      const destroyed = this.#destroy(entry, retire);
      this.#dispatch(now);
      return destroyed;
    }
    if (this.#factory.reset !== undefined) return this.#resetThenReturn(entry);
    this.#makeIdle(entry, now);
    this.#dispatch(now);
    return DONE;
  }

  async #resetThenReturn(entry: Entry<R>): Promise<void> {
    try {
      await this.#factory.reset!(entry.resource);
    } catch (error) {
      this.#backgroundError("reset", error);
      await this.#destroy(entry, "reset failed");
      return this.#dispatch();
    }
    if (entry.state === REMOVED) return; // a forced close took it meanwhile
    if (this.#state !== "open") await this.#destroy(entry, "pool closed");
    else this.#makeIdle(entry, clock());
    this.#dispatch();
  }

  /** Validates an entry taken from idle, then hands it to the first waiter (or back to idle). */
  async #validateThenHandOff(entry: Entry<R>): Promise<void> {
    entry.state = VALIDATING;
    this.#validating++;
    let valid = false;
    const timeoutMs = Math.min(this.#opts.acquireTimeoutMs, VALIDATION_TIMEOUT_MS);
    try {
      valid = await withDeadline(
        (signal) => this.#factory.validate!(entry.resource, signal),
        timeoutMs,
        this.#shutdown.signal,
        () => new PoolTimeoutError(`validate did not answer within ${timeoutMs} ms`, timeoutMs),
      ) !== false;
    } catch (error) {
      if (this.#events.active) this.#events.emit({ type: "error", during: "validate", error });
    }
    this.#validating--;
    if ((entry.state as EntryState) === REMOVED) return this.#dispatch(); // a forced close took it
    const now = clock();
    const retire = valid ? this.#retireReason(entry, now) : "failed validation";
    if (retire !== undefined) this.#destroy(entry, retire);
    else if (this.#waiters.length > this.#validating) this.#handOff(entry, now);
    else {
      entry.state = IDLE; // nobody waits any more: back to idle, keeping its idle age
      this.#idle.push(entry);
    }
    this.#dispatch(now);
  }

  #makeIdle(entry: Entry<R>, now: number): void {
    entry.state = IDLE;
    entry.idleSince = now;
    this.#idle.push(entry);
  }

  /** Destroys an entry that is no longer in `#idle`; never rejects. */
  #destroy(entry: Entry<R>, reason: string): Promise<void> {
    if (entry.state === REMOVED) return DONE;
    entry.state = REMOVED;
    entry.lease = undefined;
    this.#all.delete(entry);
    this.#counters.destroyed++;
    if (this.#events.active) this.#events.emit({ type: "destroy", id: entry.id, reason });
    const destroy = this.#factory.destroy;
    if (destroy === undefined) return DONE;
    let done: Promise<void>;
    try {
      done = Promise.resolve(destroy(entry.resource)).catch((e) =>
        this.#backgroundError("destroy", e)
      );
    } catch (error) {
      this.#backgroundError("destroy", error);
      return DONE;
    }
    this.#destroying.add(done);
    return done.finally(() => {
      this.#destroying.delete(done);
      if (this.#state !== "open") this.#finishCloseWhenDrained();
    });
  }

  /** Why an entry must not be handed out (or kept) any more, if it must not. */
  #retireReason(entry: Entry<R>, now: number): string | undefined {
    if (this.#state !== "open") return "pool closed";
    if (entry.generation < this.#generation) return "invalidated";
    if (now >= entry.expiresAt) return "maxLifetimeMs reached";
    if (entry.uses >= this.#opts.maxUses) return "maxUses reached";
    if (this.#all.size > this.#opts.max) return "pool shrunk";
    return undefined;
  }

  #needsValidation(entry: Entry<R>, now: number): boolean {
    return this.#factory.validate !== undefined &&
      now - entry.idleSince >= this.#opts.validateAfterMs;
  }

  #isFatal(error: unknown, resource: R): boolean {
    if (this.#factory.isFatal === undefined) return false;
    try {
      return this.#factory.isFatal(error, resource) === true;
    } catch (thrown) {
      this.#backgroundError("isFatal", thrown);
      return true; // a classifier that breaks cannot vouch for the resource
    }
  }

  #backgroundError(during: string, error: unknown): void {
    this.#counters.errors++;
    if (this.#events.active) this.#events.emit({ type: "error", during, error });
  }

  // ---- housekeeping: one timer per pool, never keeping the process alive -------

  #housekeep(): void {
    const now = clock();
    for (const entry of [...this.#idle]) {
      const retire = this.#retireReason(entry, now) ??
        (now - entry.idleSince >= this.#opts.idleTimeoutMs && this.#all.size > this.#opts.min
          ? "idle timeout"
          : undefined);
      if (retire !== undefined && this.#idle.remove(entry)) this.#destroy(entry, retire);
    }
    const interval = this.#opts.healthCheckIntervalMs;
    if (interval > 0 && this.#factory.validate && now - this.#lastHealthCheck >= interval) {
      this.#lastHealthCheck = now;
      for (const entry of this.#idle.drain()) this.#validateThenHandOff(entry);
    }
    const leakMs = this.#opts.leakDetectionMs;
    if (leakMs > 0) {
      for (const entry of this.#all) {
        if (entry.lease === undefined || entry.leakReported || now - entry.acquiredAt < leakMs) {
          continue;
        }
        entry.leakReported = true;
        this.#counters.leaks++;
        if (this.#events.active) {
          const stack = entry.acquireSite ?? "";
          this.#events.emit({ type: "leak", id: entry.id, heldMs: now - entry.acquiredAt, stack });
        }
      }
    }
    this.#dispatch(now);
  }

  // ---- closing ---------------------------------------------------------------

  #forceClose(): void {
    this.#forced = true;
    for (const entry of [...this.#all]) this.#destroy(entry, "close timed out");
    this.#finishCloseWhenDrained();
  }

  #finishCloseWhenDrained(): void {
    const settled = this.#forced || (this.#all.size === 0 && this.#creating === 0);
    if (this.#drained === undefined || !settled || this.#destroying.size > 0) return;
    clearTimeout(this.#closeTimer);
    const drained = this.#drained;
    this.#drained = undefined;
    drained();
  }

  // ---- errors ----------------------------------------------------------------

  #snapshot(): string {
    const size = this.#all.size;
    const idle = this.#idle.length;
    return `(size ${size}/${this.#opts.max}, in use ${size - idle}, idle ${idle}, ` +
      `waiting ${this.#waiters.length})`;
  }

  #timeoutError(startedAt: number, what: string): PoolTimeoutError {
    const waitedMs = Math.round(clock() - startedAt);
    const failing = this.#breaker.failures > 0;
    return new PoolTimeoutError(
      `Pool '${this.#opts.name}': no ${what} within ${waitedMs} ms ${this.#snapshot()}` +
        (failing ? `; the last ${this.#breaker.failures} create attempt(s) failed, see cause` : ""),
      waitedMs,
      failing ? { cause: this.#breaker.lastError } : undefined,
    );
  }

  #circuitOpenError(now: number): CircuitOpenError {
    const retryAfterMs = this.#breaker.retryAfterMs(now);
    return new CircuitOpenError(
      `Pool '${this.#opts.name}': circuit open after ${this.#breaker.failures} failed create ` +
        `attempt(s) in a row; failing fast, next try in ${retryAfterMs} ms (see cause)`,
      retryAfterMs,
      { cause: this.#breaker.lastError },
    );
  }

  #closedError(): PoolClosedError {
    return new PoolClosedError(
      `Pool '${this.#opts.name}' is ${this.#state}: it lends nothing more`,
    );
  }
}

/** One housekeeping period that is fine-grained enough for every timed option. */
function housekeepingPeriodMs(options: ResolvedOptions): number {
  const candidates = [30_000, options.idleTimeoutMs / 2, options.maxLifetimeMs / 2];
  if (options.healthCheckIntervalMs > 0) candidates.push(options.healthCheckIntervalMs);
  if (options.leakDetectionMs > 0) candidates.push(options.leakDetectionMs / 2);
  return Math.max(5, Math.min(...candidates));
}

/**
 * Runs `work` with a signal that aborts after `ms` (or with `parent`), and
 * gives up waiting for it then, even if `work` ignores its signal.
 */
async function withDeadline<T>(
  work: (signal: AbortSignal) => T | Promise<T>,
  ms: number,
  parent: AbortSignal,
  timeoutError: () => Error,
): Promise<T> {
  const controller = new AbortController();
  const { promise: expired, reject } = Promise.withResolvers<never>();
  const timer = setTimeout(() => {
    const error = timeoutError();
    controller.abort(error);
    reject(error);
  }, ms);
  try {
    const running = Promise.resolve(work(AbortSignal.any([parent, controller.signal])));
    running.catch(() => {}); // it may still fail after we stopped waiting
    return await Promise.race([running, expired]);
  } finally {
    clearTimeout(timer);
  }
}

function acquireSite(): string {
  return new Error("lease acquired here").stack ?? "";
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

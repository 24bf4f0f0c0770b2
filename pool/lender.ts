import type { Clock, Timer } from "./clock.ts";
import { type Entry, Lease, type LeaseOwner, REMOVED, VALIDATING } from "./entry.ts";
import {
  circuitOpenError,
  closedError,
  type FailureSummary,
  overloadedError,
  type PoolClosedError,
  timeoutError,
} from "./errors.ts";
import { Deque, type Inventory } from "./inventory.ts";
import { WaitStats } from "./metrics.ts";

/** What the lender needs to know about creation: whether to fail fast, and why. */
export interface CreationView {
  /** The create failures behind an error, if any. */
  readonly failure: FailureSummary;
  /** Milliseconds until the breaker lets a create through. */
  retryAfterMs(now: number): number;
  /** Whether the breaker fails callers fast now. */
  rejects(now: number): boolean;
  /** A caller waits: let a pending retry keep the process alive. */
  keepAlive(): void;
}

/** Gives a lease's entry back to the pool (see `LeaseOwner.giveBack`). */
export type GiveBack<R> = LeaseOwner<R>["giveBack"];

/**
 * The waiting side of a pool: the queue of callers wanting a resource, the
 * callers of `ready()`, and the hand-over of an entry to a caller, with the
 * errors they get. The pool's dispatch decides when; the lender does it.
 */
export class Lender<R> {
  /** Callers of `acquire()` waiting for a resource. */
  readonly waiters: WaitQueue<Lease<R>>;
  /** Callers of `ready()` waiting for `min` resources. */
  readonly readyWaiters: WaitQueue<void>;
  /** Entries being validated for a waiter: each is promised to one. */
  validating = 0;
  /** How long callers waited. */
  readonly waits = new WaitStats();

  /** The leases' way back to the pool. */
  readonly owner: LeaseOwner<R>;

  constructor(
    readonly inventory: Inventory<R>,
    giveBack: GiveBack<R>,
    readonly failures: CreationView,
  ) {
    const inv = inventory;
    this.owner = { name: inv.opts.name, giveBack };
    this.waiters = new WaitQueue({
      timeoutError: (timeoutMs, waitedMs) => this.timeoutError("resource", timeoutMs, waitedMs),
      gaveUp: (reason, waitedMs) => {
        if (reason === "abort") {
          inv.counters.aborted++;
          if (inv.events.active) inv.events.emit({ type: "abort", waitedMs });
          return;
        }
        inv.counters.timedOut++;
        inv.tracker?.timedOut();
        if (inv.events.active) inv.events.emit({ type: "timeout", waitedMs });
      },
    }, inv.clock);
    this.readyWaiters = new WaitQueue({
      timeoutError: (timeoutMs, waitedMs) =>
        this.timeoutError(`${inv.opts.min} (min) resources ready`, timeoutMs, waitedMs),
      gaveUp: () => {},
    }, inv.clock);
  }

  /** Callers waiting that no entry under validation is promised to. */
  get unserved(): number {
    return this.waiters.length - this.validating;
  }

  /** Whether anyone waits, for a resource or for `ready()`. */
  get anyoneWaits(): boolean {
    return this.waiters.length > 0 || this.readyWaiters.length > 0;
  }

  /**
   * Queues a caller for a resource, unless too many wait already
   * (`PoolOverloadedError`) or the breaker fails callers fast and no
   * resource exists that could serve it (`CircuitOpenError`).
   */
  enqueue(now: number, signal: AbortSignal | undefined, timeoutMs: number, site?: string) {
    const maxWaiting = this.inventory.opts.maxWaiting;
    if (this.waiters.length >= maxWaiting) {
      return Promise.reject(overloadedError(this.snapshot(), maxWaiting));
    }
    if (this.failures.rejects(now) && this.inventory.all.size === 0) {
      return Promise.reject(this.circuitOpenError(now));
    }
    const waiting = this.waiters.wait(now, signal, timeoutMs, site);
    this.failures.keepAlive();
    return waiting;
  }

  /** Queues a caller of `ready()`, unless the breaker fails callers fast. */
  waitReady(now: number, signal: AbortSignal | undefined, timeoutMs: number): Promise<void> {
    if (this.failures.rejects(now)) return Promise.reject(this.circuitOpenError(now));
    const waiting = this.readyWaiters.wait(now, signal, timeoutMs);
    this.failures.keepAlive();
    return waiting;
  }

  /** Gives `entry` to the longest waiting caller, in the same tick it leaves the queue. */
  handOff(entry: Entry<R>, now: number): void {
    const waiter = this.waiters.next()!;
    waiter.settle.resolve(this.lend(entry, now - waiter.startedAt, waiter.site, now));
  }

  /** Lends `entry` under a new lease. */
  lend(entry: Entry<R>, waitedMs: number, site: string | undefined, now: number): Lease<R> {
    const lease = new Lease(this.owner, entry, entry.lend(now, site));
    const inv = this.inventory;
    inv.counters.acquired++;
    this.waits.record(waitedMs);
    inv.tracker?.acquired(waitedMs);
    if (inv.events.active) inv.events.emit({ type: "acquire", id: entry.id, waitedMs });
    return lease;
  }

  /** A create succeeded: the new entry goes to a waiter or idle (destroyed if closing). */
  placeCreated(resource: R, now: number): void {
    const inv = this.inventory;
    const entry = inv.add(resource, now);
    // A create that outlived its waiter still lands: in the pool, not on the floor.
    if (inv.state !== "open") inv.destroy(entry, "pool closed");
    else this.place(entry, now);
  }

  /**
   * A create failed. With no caller of `acquire()` waiting it was the
   * top-up to `min`, background work: an `error` event (whether or not
   * someone awaits `ready()`). If the breaker opened, the callers of
   * `ready()` fail fast, and so do the acquires unless resources exist that
   * may still come back to them within their own deadline.
   */
  createFailed(error: unknown, now: number, opened: boolean): void {
    if (this.waiters.length === 0) this.inventory.backgroundError("create", error);
    if (opened) this.failFastIfNothingServes(now, true);
  }

  /**
   * While the breaker fails callers fast: rejects the waiting acquires with
   * `CircuitOpenError` when no resource exists that could serve them
   * (`ready` too: the callers of `ready()`, who need creates).
   */
  failFastIfNothingServes(now: number, ready: boolean): void {
    if (!this.failures.rejects(now)) return;
    if (ready) this.readyWaiters.rejectAll(() => this.circuitOpenError(now));
    if (this.inventory.all.size === 0) this.waiters.rejectAll(() => this.circuitOpenError(now));
  }

  /** Places an entry that is free: to the first unserved waiter, else idle. */
  place(entry: Entry<R>, now: number): void {
    if (this.unserved > 0) this.handOff(entry, now);
    else this.inventory.idle.push(entry);
  }

  /**
   * Validates an entry taken from idle for a waiter; then `checked` places
   * it. Callers arriving meanwhile do not count on it: it is promised.
   */
  async validateFor(entry: Entry<R>, shutdown: AbortSignal): Promise<boolean> {
    entry.startCheck(VALIDATING);
    this.validating++;
    const valid = await this.inventory.validate(entry, shutdown, false);
    this.validating--;
    return valid;
  }

  /** A check finished: destroy the entry, hand it to a waiter, or put it back idle. */
  checked(entry: Entry<R>, valid: boolean, now: number): void {
    if (entry.state === REMOVED) return; // a forced close took it
    const inv = this.inventory;
    const retire = valid ? inv.retireReason(entry, now) : "failed validation";
    if (retire !== undefined) inv.destroy(entry, retire);
    else if (this.unserved > 0) this.handOff(entry, now);
    else {
      entry.checked(now);
      inv.idle.push(entry);
    }
  }

  /** Resolves the callers of `ready()` once `min` resources exist. */
  resolveReady(): void {
    if (this.readyWaiters.length === 0) return;
    if (this.inventory.all.size < this.inventory.opts.min) return;
    for (let w = this.readyWaiters.next(); w !== undefined; w = this.readyWaiters.next()) {
      w.settle.resolve();
    }
  }

  /** Fails every waiting caller with the error `make` builds. */
  rejectAll(make: () => unknown): void {
    this.waiters.rejectAll(make);
    this.readyWaiters.rejectAll(make);
  }

  // ---- the errors callers get ---------------------------------------------------

  /** The numbers an error message carries. */
  snapshot() {
    return this.inventory.snapshot(this.waiters.length);
  }

  /** No `what` within the caller's `timeoutMs`. */
  timeoutError(what: string, timeoutMs: number, waitedMs: number) {
    return timeoutError(this.snapshot(), what, timeoutMs, waitedMs, this.failures.failure);
  }

  /** The breaker is open. */
  circuitOpenError(now: number) {
    const retryAfterMs = this.failures.retryAfterMs(now);
    return circuitOpenError(this.snapshot(), retryAfterMs, this.failures.failure);
  }

  /** The pool is closing or closed. */
  closedError(): PoolClosedError {
    return closedError(this.inventory.opts.name, this.inventory.state);
  }
}

// ---- the queue of waiting callers ---------------------------------------------------------

/** setTimeout fires at once past this (a 32-bit delay). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A caller waiting in a {@link WaitQueue}. It is in the queue exactly while it waits. */
export class Waiter<T> {
  /** The caller's promise and the functions that settle it. */
  readonly settle: PromiseWithResolvers<T> = Promise.withResolvers<T>();

  /** Made by {@link WaitQueue.wait} only. */
  constructor(
    readonly queue: WaitQueue<T>,
    /** When the wait began (the pool's clock, ms). */
    readonly startedAt: number,
    /** How long it may wait, as the caller set it (ms; Infinity: forever). */
    readonly timeoutMs: number,
    /** When it gives up (same clock; Infinity: never). */
    readonly deadline: number,
    readonly signal: AbortSignal | undefined,
    /** The caller's stack, when leak detection wants it. */
    readonly site: string | undefined,
  ) {}

  /** The abort listener: the waiter itself, so no closure is made per wait. */
  handleEvent(): void {
    this.queue.abandon(this);
  }
}

/** How a queue tells its owner that a caller gave up. */
export interface WaitQueueOwner {
  /** The error for a caller whose deadline (`timeoutMs` after it began) passed. */
  timeoutError(timeoutMs: number, waitedMs: number): Error;
  /** Called once per caller that leaves by timeout or abort. */
  gaveUp(reason: "timeout" | "abort", waitedMs: number): void;
}

/**
 * A FIFO queue of callers, each with its own deadline and an optional
 * AbortSignal. A caller leaves the queue at once when either passes;
 * {@link WaitQueue.next} takes the longest waiting one out in the same tick
 * that its owner hands it a value, so an aborted caller never receives one.
 *
 * The deadlines share one timer, armed for the earliest of them: with the
 * pool's default timeout they arrive in queue order, so a busy pool with a
 * hundred waiters arms no timer per caller. The timer exists only while
 * someone waits, so only a waiting caller keeps the process alive.
 */
export class WaitQueue<T> {
  #waiters = new Deque<Waiter<T>>();
  #timer: Timer | undefined = undefined;
  #timerAt = Infinity;

  /** Reports give-ups to `owner`; deadlines run on `clock`. */
  constructor(readonly owner: WaitQueueOwner, readonly clock: Clock) {}

  /** Callers waiting now. */
  get length(): number {
    return this.#waiters.length;
  }

  /** Queues a caller; resolves when its owner serves it. */
  wait(
    startedAt: number,
    signal: AbortSignal | undefined,
    timeoutMs: number,
    site?: string,
  ): Promise<T> {
    const deadline = startedAt + timeoutMs;
    const waiter = new Waiter(this, startedAt, timeoutMs, deadline, signal, site);
    signal?.addEventListener("abort", waiter, { once: true });
    this.#waiters.push(waiter);
    if (deadline < this.#timerAt) this.#arm(deadline);
    return waiter.settle.promise;
  }

  /** Takes the longest waiting caller out of the queue, to be served now. */
  next(): Waiter<T> | undefined {
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) this.#forget(waiter);
    if (this.#waiters.length === 0) this.#disarm();
    return waiter;
  }

  /** Rejects every waiting caller with the error `makeError` returns. */
  rejectAll(makeError: () => unknown): void {
    for (let waiter = this.next(); waiter !== undefined; waiter = this.next()) {
      waiter.settle.reject(makeError());
    }
  }

  /** The caller's signal aborted: it leaves with `signal.reason`. */
  abandon(waiter: Waiter<T>): void {
    if (!this.#waiters.remove(waiter)) return;
    this.#forget(waiter);
    if (this.#waiters.length === 0) this.#disarm();
    this.owner.gaveUp("abort", this.clock.now() - waiter.startedAt);
    waiter.settle.reject(waiter.signal?.reason);
  }

  /** The timer fired: every caller whose deadline passed leaves; re-arm for the rest. */
  #expire = (): void => {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = this.clock.now();
    const expired: Waiter<T>[] = [];
    let earliest = Infinity;
    for (const waiter of this.#waiters) {
      if (waiter.deadline <= now) expired.push(waiter);
      else earliest = Math.min(earliest, waiter.deadline);
    }
    for (const waiter of expired) {
      this.#waiters.remove(waiter);
      this.#forget(waiter);
    }
    if (earliest !== Infinity) this.#arm(earliest);
    for (const waiter of expired) {
      this.owner.gaveUp("timeout", now - waiter.startedAt);
      waiter.settle.reject(this.owner.timeoutError(waiter.timeoutMs, now - waiter.startedAt));
    }
  };

  #arm(at: number): void {
    this.clock.clearTimeout(this.#timer);
    this.#timerAt = at;
    const ms = Math.min(MAX_TIMER_MS, Math.max(0, at - this.clock.now())); // longer ones re-arm
    this.#timer = this.clock.setTimeout(this.#expire, ms, false);
  }

  #disarm(): void {
    if (this.#timer === undefined) return;
    this.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }

  #forget(waiter: Waiter<T>): void {
    waiter.signal?.removeEventListener("abort", waiter);
  }
}

import { type Entry, REMOVED, VALIDATING } from "./entry.ts";
import {
  circuitOpenError,
  closedError,
  type FailureSummary,
  overloadedError,
  type PoolClosedError,
  timeoutError,
} from "./errors.ts";
import type { Inventory } from "./inventory.ts";
import { Lease, type LeaseOwner } from "./lease.ts";
import { WaitStats } from "./wait_stats.ts";
import { WaitQueue } from "./waiters.ts";

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
        if (reason === "abort") return void inv.counters.aborted++;
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
   * (`PoolOverloadedError`) or the breaker fails callers fast and nothing
   * is idle (`CircuitOpenError`).
   */
  enqueue(now: number, signal: AbortSignal | undefined, timeoutMs: number, site?: string) {
    const maxWaiting = this.inventory.opts.maxWaiting;
    if (this.waiters.length >= maxWaiting) {
      return Promise.reject(overloadedError(this.snapshot(), maxWaiting));
    }
    if (this.failures.rejects(now) && this.inventory.idle.length === 0) {
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
    waiter.resolve(this.lend(entry, now - waiter.startedAt, waiter.site, now));
  }

  /** Lends `entry` under a new lease. */
  lend(entry: Entry<R>, waitedMs: number, site: string | undefined, now: number): Lease<R> {
    const lease = new Lease(this.owner, entry);
    entry.lend(lease, now, site);
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

  /** A create failed: an `error` event if nobody waits; waiters fail fast if the breaker opened. */
  createFailed(error: unknown, now: number, opened: boolean): void {
    // A top-up to min: nobody else would hear of it.
    if (!this.anyoneWaits) this.inventory.backgroundError("create", error);
    if (opened) this.rejectAll(() => this.circuitOpenError(now));
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
      w.resolve();
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

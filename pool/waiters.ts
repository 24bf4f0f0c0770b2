import type { Clock, Timer } from "./clock.ts";
import { Deque } from "./deque.ts";

/** setTimeout fires at once past this (a 32-bit delay). */
const MAX_TIMER_MS = 2 ** 31 - 1;

const settleNothing = () => {};
// One shared executor hands the promise's settle functions to the waiter
// being queued: no closure and no resolvers object per wait (the hot path under load).
// deno-lint-ignore no-explicit-any
let capturing: Waiter<any> | undefined;
// deno-lint-ignore no-explicit-any
function capture(resolve: (value: any) => void, reject: (error: unknown) => void): void {
  capturing!.resolve = resolve;
  capturing!.reject = reject;
  capturing = undefined;
}

/** A caller waiting in a {@link WaitQueue}. It is in the queue exactly while it waits. */
export class Waiter<T> {
  /** Settles the caller's promise with what it waited for. */
  resolve: (value: T) => void = settleNothing;
  /** Settles the caller's promise with an error. */
  reject: (error: unknown) => void = settleNothing;

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
  wait(startedAt: number, signal: AbortSignal | undefined, timeoutMs: number, site?: string) {
    const deadline = startedAt + timeoutMs;
    const waiter = new Waiter(this, startedAt, timeoutMs, deadline, signal, site);
    capturing = waiter;
    const promise = new Promise<T>(capture);
    signal?.addEventListener("abort", waiter, { once: true });
    this.#waiters.push(waiter);
    if (deadline < this.#timerAt) this.#arm(deadline);
    return promise;
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
      waiter.reject(makeError());
    }
  }

  /** The caller's signal aborted: it leaves with `signal.reason`. */
  abandon(waiter: Waiter<T>): void {
    if (!this.#waiters.remove(waiter)) return;
    this.#forget(waiter);
    if (this.#waiters.length === 0) this.#disarm();
    this.owner.gaveUp("abort", this.clock.now() - waiter.startedAt);
    waiter.reject(waiter.signal?.reason);
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
      waiter.reject(this.owner.timeoutError(waiter.timeoutMs, now - waiter.startedAt));
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

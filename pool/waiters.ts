import { Deque } from "./deque.ts";

/** What the timer functions return (a number in Deno, an object in newer typings). */
export type Timer = ReturnType<typeof setTimeout>;

/** A caller waiting in a {@link WaitQueue}. It is in the queue exactly while it waits. */
export class Waiter<T> {
  /** The deadline's timer, when the wait has one. */
  timer: Timer | undefined = undefined;
  /** Made by {@link WaitQueue.wait} only. */
  constructor(
    readonly queue: WaitQueue<T>,
    readonly resolve: (value: T) => void,
    readonly reject: (error: unknown) => void,
    /** When the wait began (performance.now()). */
    readonly startedAt: number,
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
  /** The error for a caller whose deadline passed. */
  timeoutError(startedAt: number): Error;
  /** Called once per caller that leaves by timeout or abort. */
  gaveUp(reason: "timeout" | "abort", waitedMs: number): void;
}

/**
 * A FIFO queue of callers, each with its own deadline (one timer) and an
 * optional AbortSignal. A caller leaves the queue at once when either fires;
 * {@link WaitQueue.next} takes the longest waiting one out in the same tick
 * that its owner hands it a value, so an aborted caller never receives one.
 */
export class WaitQueue<T> {
  #waiters = new Deque<Waiter<T>>();

  /** Reports give-ups to `owner`. */
  constructor(readonly owner: WaitQueueOwner) {}

  /** Callers waiting now. */
  get length(): number {
    return this.#waiters.length;
  }

  /** Queues a caller; resolves when its owner serves it. */
  wait(startedAt: number, signal: AbortSignal | undefined, timeoutMs: number, site?: string) {
    const { promise, resolve, reject } = Promise.withResolvers<T>();
    const waiter = new Waiter(this, resolve, reject, startedAt, signal, site);
    if (timeoutMs !== Infinity) waiter.timer = setTimeout(this.#expire, timeoutMs, waiter);
    signal?.addEventListener("abort", waiter, { once: true });
    this.#waiters.push(waiter);
    return promise;
  }

  /** Takes the longest waiting caller out of the queue, to be served now. */
  next(): Waiter<T> | undefined {
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) this.#forget(waiter);
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
    this.owner.gaveUp("abort", performance.now() - waiter.startedAt);
    waiter.reject(waiter.signal?.reason);
  }

  #expire = (waiter: Waiter<T>): void => {
    if (!this.#waiters.remove(waiter)) return;
    this.#forget(waiter);
    this.owner.gaveUp("timeout", performance.now() - waiter.startedAt);
    waiter.reject(this.owner.timeoutError(waiter.startedAt));
  };

  #forget(waiter: Waiter<T>): void {
    if (waiter.timer !== undefined) clearTimeout(waiter.timer);
    waiter.signal?.removeEventListener("abort", waiter);
  }
}

/**
 * A clock the pool tests drive by hand: time moves only in `advance()`, and
 * the timers due on the way fire in order, each followed by the promise
 * callbacks it causes. Install it with `using clock = fakeClock()` before
 * creating the pool; it restores the real clock at the end of the scope.
 */
import { type Clock, type Timer, usePoolClock } from "../../pool/clock.ts";

interface FakeTimer {
  at: number;
  seq: number;
  fn: () => void;
}

/** A hand-driven {@link Clock}. */
export class FakeClock implements Clock, Disposable {
  #now = 1_000;
  #seq = 0;
  #timers = new Map<number, FakeTimer>();
  #restore: () => void;

  constructor() {
    this.#restore = usePoolClock(this);
  }

  now(): number {
    return this.#now;
  }

  recent(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const id = ++this.#seq;
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), seq: id, fn });
    return id as unknown as Timer;
  }

  clearTimeout(timer: Timer | undefined): void {
    if (timer !== undefined) this.#timers.delete(timer as unknown as number);
  }

  refTimer(): void {}

  /** Timers pending now. */
  get pendingTimers(): number {
    return this.#timers.size;
  }

  /** Moves time forward by `ms`, firing every timer due on the way, in order. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    await flush();
    while (true) {
      let next: [number, FakeTimer] | undefined;
      for (const entry of this.#timers) {
        if (entry[1].at > target) continue;
        if (next === undefined || entry[1].at < next[1].at) next = entry;
      }
      if (next === undefined) break;
      this.#timers.delete(next[0]);
      this.#now = Math.max(this.#now, next[1].at);
      next[1].fn();
      await flush();
    }
    this.#now = target;
    await flush();
  }

  /** Restores the real clock for pools created from now on. */
  [Symbol.dispose](): void {
    this.#restore();
  }
}

/** Installs a fake clock for the pools created until it is disposed. */
export function fakeClock(): FakeClock {
  return new FakeClock();
}

/** Lets every pending promise callback run (one real macrotask turn). */
export function flush(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

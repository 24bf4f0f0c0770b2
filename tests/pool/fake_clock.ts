/**
 * A clock the pool tests drive by hand: time moves only in `advance()`, and
 * the timers due on the way fire in order, each followed by the promise
 * callbacks it causes. `const clock = fakeClock()`, then `clock.pool(options)`
 * makes a pool that runs on it (through the pool's internal clock option);
 * other pools keep the real clock.
 */
import { Pool, type PoolOptions } from "../../mod.ts";
import { CLOCK, type Clock, type Timer, type WithClock } from "../../pool/clock.ts";

interface FakeTimer {
  at: number;
  seq: number;
  fn: () => void;
}

/** A hand-driven {@link Clock}. */
export class FakeClock implements Clock {
  #now = 1_000;
  #seq = 0;
  #timers = new Map<number, FakeTimer>();

  /** A pool on this clock. */
  pool<R>(options: PoolOptions<R>): Pool<R> {
    const withClock: PoolOptions<R> & WithClock = { ...options, [CLOCK]: this };
    return new Pool(withClock);
  }

  now(): number {
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
}

/** A new hand-driven clock at time 1000. */
export function fakeClock(): FakeClock {
  return new FakeClock();
}

/** Lets every pending promise callback run (one real macrotask turn). */
export function flush(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

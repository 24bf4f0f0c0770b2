/**
 * The pool's time source: a monotonic clock and the timers that go with it,
 * behind one small interface so that tests can drive time by hand. Each pool
 * is given its clock when it is made; nothing about time is kept in module
 * state.
 *
 * @module
 */

/** What the timer functions return (a number in Deno). */
export type Timer = ReturnType<typeof setTimeout>;

/** A monotonic clock in milliseconds plus one-shot timers on the same time line. */
export interface Clock {
  /** Milliseconds on a monotonic time line (arbitrary origin). */
  now(): number;
  /** Calls `fn` once after `ms`. An unref'd timer does not keep the process alive. */
  setTimeout(fn: () => void, ms: number, unref: boolean): Timer;
  /** Cancels a timer; `undefined` is ignored. */
  clearTimeout(timer: Timer | undefined): void;
  /** Lets a timer keep the process alive again, or not. */
  refTimer(timer: Timer, ref: boolean): void;
}

/**
 * The real clock: `performance.now()`, which never steps when the wall clock
 * does (NTP, a suspended VM, `date -s`), and the platform's timers.
 */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout(fn, ms, unref) {
    const timer = setTimeout(fn, ms);
    if (unref) Deno.unrefTimer(timer);
    return timer;
  },
  clearTimeout(timer) {
    if (timer !== undefined) clearTimeout(timer);
  },
  refTimer(timer, ref) {
    if (ref) Deno.refTimer(timer);
    else Deno.unrefTimer(timer);
  },
};

/**
 * The key of the internal pool option that gives a pool another clock (the
 * tests' hand-driven one). A symbol, so it is no option a user can misspell
 * or meet in the documented options; not exported from the package.
 */
export const CLOCK: unique symbol = Symbol("poolkit.clock");

/** Pool options as the pool reads them: the documented ones plus the clock seam. */
export interface WithClock {
  /** The clock the pool runs on; default {@link systemClock}. */
  [CLOCK]?: Clock;
}

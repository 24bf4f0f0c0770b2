/**
 * The pool's time source: a monotonic clock and the timers that go with it,
 * behind one small interface so tests can drive time by hand.
 *
 * Elapsed time is measured on `performance.now()`, which never steps when
 * the wall clock does (NTP, a suspended VM, an operator's `date -s`). It
 * costs about 0.1 µs in Deno, twice `Date.now()`, and the acquire/release
 * cycle needs two timestamps, so the pool reads it less often rather than
 * switching to a cheaper clock that would be wrong: at most once per public
 * call (the value is passed down), at most once per millisecond, and not
 * at all for the lending of an idle resource in the same event-loop turn
 * as a previous read ({@link recentNow}).
 *
 * @module
 */

/** What the timer functions return (a number in Deno). */
export type Timer = ReturnType<typeof setTimeout>;

/** A monotonic clock in milliseconds plus one-shot timers on the same time line. */
export interface Clock {
  /** Milliseconds on a monotonic time line (arbitrary origin). */
  now(): number;
  /**
   * The time as last read in the current event-loop turn (at most about
   * 1 ms old across turns), or a fresh read: for stamps that tolerate that,
   * such as when an idle resource was lent.
   */
  recent(): number;
  /** Calls `fn` once after `ms`. An unref'd timer does not keep the process alive. */
  setTimeout(fn: () => void, ms: number, unref: boolean): Timer;
  /** Cancels a timer; `undefined` is ignored. */
  clearTimeout(timer: Timer | undefined): void;
  /** Lets a timer keep the process alive again, or not. */
  refTimer(timer: Timer, ref: boolean): void;
}

let lastWallMs = NaN;
let lastMonoMs = 0;
/** Whether `lastMonoMs` was read since the turn ticker last ran. */
let turnFresh = false;
let ticker: ReturnType<typeof setInterval> | undefined;
let quietTicks = 0;
/** The ticker stops after this many ticks without a read (the pools went quiet). */
const QUIET_TICKS = 50;

/**
 * `performance.now()`, read at most once per wall-clock millisecond: within
 * the same `Date.now()` millisecond the last monotonic value is returned
 * (at most about 1 ms old, the resolution the pool works at). Every value
 * comes from the monotonic clock; the wall clock only says whether a
 * millisecond has passed, so a step of it, either way, just causes a fresh
 * read and can neither stall nor rush the pool's time.
 */
export function monotonicNow(): number {
  const wall = Date.now();
  if (!turnFresh) startTurn();
  if (wall === lastWallMs) return lastMonoMs;
  lastWallMs = wall;
  const mono = performance.now();
  return mono > lastMonoMs ? (lastMonoMs = mono) : lastMonoMs;
}

/**
 * The last {@link monotonicNow} value if it was read in this event-loop
 * turn (a 1 ms ticker ends turns while the pools are busy), else a fresh
 * read. Free on the acquire fast path right after a release, the common
 * case; never older than the current turn plus a millisecond.
 */
export function recentNow(): number {
  return turnFresh ? lastMonoMs : monotonicNow();
}

function startTurn(): void {
  turnFresh = true;
  quietTicks = 0;
  if (ticker !== undefined) return;
  ticker = setInterval(endTurn, 1);
  Deno.unrefTimer(ticker);
}

function endTurn(): void {
  if (turnFresh) {
    turnFresh = false;
    quietTicks = 0;
  } else if (++quietTicks >= QUIET_TICKS) {
    clearInterval(ticker);
    ticker = undefined;
  }
}

/** The real clock: {@link monotonicNow} and the platform's timers. */
export const systemClock: Clock = {
  now: monotonicNow,
  recent: recentNow,
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

let current: Clock = systemClock;

/** The clock new pools take (the system clock unless a test swapped it). */
export function poolClock(): Clock {
  return current;
}

/**
 * Test seam: pools created from now on use `clock`, until the returned
 * function is called. Not part of the package's public API.
 */
export function usePoolClock(clock: Clock): () => void {
  const previous = current;
  current = clock;
  return () => void (current = previous);
}

/**
 * Callers that loop on one call until stopped, recording when each call started and ended and
 * how it ended: the load a failover test or demo runs under, and the record it reads afterwards.
 *
 * ```ts
 * await using callers = startCallers(20, () => pg.query`insert into t default values`);
 * await callers.until("a write by every caller", (calls) => ...);
 * const calls = await callers.stop();
 * ```
 *
 * @module
 */

/** One call of one caller. Times are `performance.now()` milliseconds. */
export interface CallRecord<T> {
  /** Which caller (0-based). */
  caller: number;
  /** When the call was made. */
  startMs: number;
  /** When it settled. */
  endMs: number;
  /** What it resolved to, when it did. */
  value?: T;
  /** What it rejected with, when it did. */
  error?: unknown;
}

/** Looping callers. Dispose of them (or `stop()`) to end the loops. */
export interface Callers<T> extends AsyncDisposable {
  /** Every settled call so far, in the order they settled. */
  readonly calls: readonly CallRecord<T>[];
  /** Waits until `done(calls)` holds; an error naming `what` after `timeoutMs` (default 30 s). */
  until(
    what: string,
    done: (calls: readonly CallRecord<T>[]) => boolean,
    timeoutMs?: number,
  ): Promise<void>;
  /** Lets each caller finish its call in flight, ends the loops, returns every call. */
  stop(): Promise<readonly CallRecord<T>[]>;
}

/** Options of {@link startCallers}. */
export interface StartCallersOptions {
  /** Pause between one caller's calls, in ms (so failing calls do not spin). Default 10. */
  pauseMs?: number;
}

/** Starts `count` callers, each calling `call(caller)` again as soon as (and after a pause) its last call settled. */
export function startCallers<T>(
  count: number,
  call: (caller: number) => Promise<T>,
  options: StartCallersOptions = {},
): Callers<T> {
  const pauseMs = options.pauseMs ?? 10;
  const calls: CallRecord<T>[] = [];
  let running = true;
  const loop = async (caller: number) => {
    while (running) {
      const startMs = performance.now();
      try {
        const value = await call(caller);
        calls.push({ caller, startMs, endMs: performance.now(), value });
      } catch (error) {
        calls.push({ caller, startMs, endMs: performance.now(), error });
      }
      if (running) await new Promise((r) => setTimeout(r, pauseMs));
    }
  };
  const loops = Array.from({ length: count }, (_, i) => loop(i));
  let stopping: Promise<readonly CallRecord<T>[]> | undefined;
  const stop = () =>
    stopping ??= (async () => {
      running = false;
      await Promise.all(loops);
      return calls;
    })();
  return {
    calls,
    async until(what, done, timeoutMs = 30_000) {
      const deadline = performance.now() + timeoutMs;
      while (!done(calls)) {
        if (performance.now() > deadline) {
          throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    stop,
    async [Symbol.asyncDispose]() {
      await stop();
    },
  };
}

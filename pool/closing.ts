import type { Clock, Timer } from "./clock.ts";

/**
 * The end of `close()`: resolves once the pool has drained, or at the
 * caller's deadline whatever is still running (leases, hooks). Knows
 * nothing of resources; the pool says when it drained.
 */
export class Closing {
  /** Resolves when the close is done. */
  readonly done: Promise<void>;
  #resolve: (() => void) | undefined;
  #timer: Timer | undefined;
  /** Whether the deadline passed (what is still out was destroyed). */
  forced = false;

  /** Starts the clock on `timeoutMs`; at the deadline `onDeadline` runs, then it resolves. */
  constructor(readonly clock: Clock, timeoutMs: number, onDeadline: () => void) {
    const { promise, resolve } = Promise.withResolvers<void>();
    this.done = promise;
    this.#resolve = resolve;
    if (timeoutMs === Infinity) return;
    this.#timer = clock.setTimeout(
      () => {
        this.forced = true;
        onDeadline();
        this.finish(true);
      },
      timeoutMs,
      false,
    );
  }

  /** Resolves `done` if the pool `drained` or the deadline passed. Idempotent. */
  finish(drained: boolean): void {
    if (this.#resolve === undefined || !(drained || this.forced)) return;
    this.clock.clearTimeout(this.#timer);
    const resolve = this.#resolve;
    this.#resolve = undefined;
    resolve();
  }
}

/**
 * Measures how late timers fire while work runs: a chain of 1 ms timeouts,
 * each recording (fired at) - (scheduled at + 1 ms). Synchronous work that
 * blocks the event loop shows up as lateness as long as the block.
 *
 * @module
 */

import { SampleBuffer } from "./stats.ts";

const DELAY_MS = 1;

/** A running lateness probe; `stop()` returns every lateness sample (ms). */
export class EventLoopMonitor {
  readonly #samples = new SampleBuffer();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #expected = 0;

  /** Starts sampling. */
  start(): void {
    this.#schedule();
  }

  /** Stops sampling and returns the samples. */
  stop(): Float64Array {
    if (this.#timer !== undefined) {
      // A timer still pending past its due time was held up by work that has not yielded yet
      // (a synchronous loop): that delay counts too.
      const late = performance.now() - this.#expected;
      if (late > 0) this.#samples.push(late);
    }
    clearTimeout(this.#timer);
    this.#timer = undefined;
    return this.#samples.values().slice();
  }

  #schedule(): void {
    this.#expected = performance.now() + DELAY_MS;
    this.#timer = setTimeout(this.#tick, DELAY_MS);
  }

  readonly #tick = (): void => {
    this.#samples.push(Math.max(0, performance.now() - this.#expected));
    this.#schedule();
  };
}

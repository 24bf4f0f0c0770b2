/**
 * Drives an operation from N concurrent callers for a fixed time: the load
 * generator every contender shares, so contenders differ only in `op`.
 *
 * @module
 */

import type { Trial } from "./benchmark.ts";
import { SampleBuffer } from "./stats.ts";

/** How often a caller that does not time each op looks at the clock. */
const CLOCK_EVERY = 64;

/**
 * Runs `op` in `concurrency` callers until `durationMs` has passed; each
 * caller finishes its op in flight. With `recordLatency`, every op is timed;
 * without, the clock is read only every few ops so that cheap ops (a pool
 * acquire+release is about a microsecond) are not dominated by timing.
 */
export async function runCallers(
  concurrency: number,
  durationMs: number,
  op: () => Promise<unknown>,
  recordLatency: boolean,
): Promise<Trial> {
  const samples = recordLatency ? new SampleBuffer() : undefined;
  const start = performance.now();
  const end = start + durationMs;
  let ops = 0;
  const caller = async () => {
    if (samples) {
      while (true) {
        const t0 = performance.now();
        if (t0 >= end) return;
        await op();
        samples.push(performance.now() - t0);
        ops++;
      }
    }
    while (performance.now() < end) {
      for (let i = 0; i < CLOCK_EVERY; i++) await op();
      ops += CLOCK_EVERY;
    }
  };
  const callers: Promise<void>[] = [];
  for (let i = 0; i < concurrency; i++) callers.push(caller());
  await Promise.all(callers);
  return { ops, elapsedMs: performance.now() - start, latenciesMs: samples?.values() };
}

/** Runs a synchronous `op` in a tight loop for `durationMs` (the event loop is blocked). */
export function runSyncLoop(
  durationMs: number,
  op: () => unknown,
  recordLatency: boolean,
): Trial {
  const samples = recordLatency ? new SampleBuffer() : undefined;
  const start = performance.now();
  const end = start + durationMs;
  let ops = 0;
  let t0 = start;
  while (t0 < end) {
    op();
    const t1 = performance.now();
    samples?.push(t1 - t0);
    t0 = t1;
    ops++;
  }
  return { ops, elapsedMs: performance.now() - start, latenciesMs: samples?.values() };
}

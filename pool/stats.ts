import type { Creator } from "./creator.ts";
import type { Inventory } from "./inventory.ts";
import type { Lender } from "./lender.ts";
import type { PoolStats } from "./types.ts";
import type { DurationHistogram } from "./wait_stats.ts";

/** Assembles `pool.stats()` from the parts that hold the numbers. */
export function poolStats<R>(
  inv: Inventory<R>,
  lender: Lender<R>,
  creator: Creator<R>,
  useTimes: DurationHistogram,
): PoolStats {
  const size = inv.all.size;
  const idle = inv.idle.length;
  return {
    name: inv.opts.name,
    state: inv.state,
    min: inv.opts.min,
    max: inv.opts.max,
    maxIdle: inv.opts.maxIdle,
    size,
    idle,
    inUse: size - idle,
    pending: lender.waiters.length,
    creating: creator.creating,
    ...inv.counters,
    breaker: creator.breaker.state,
    acquireWaitMs: lender.waits.percentiles(),
    acquireWaitHistogram: lender.waits.histogram(),
    createTimeHistogram: inv.createTimes.snapshot(),
    useTimeHistogram: useTimes.snapshot(),
  };
}

/**
 * Receives a pool's timings as they happen (HikariCP's `IMetricsTracker`):
 * what an exporter such as OpenTelemetry needs that a `stats()` snapshot
 * cannot give. Attach one with `pool.track(tracker)`. Each call runs on the
 * acquire/release path, so keep it to a few arithmetic operations.
 */
export interface PoolTracker {
  /** A `create` settled after `ms` milliseconds; `ok` is false when it failed. */
  created(ms: number, ok: boolean): void;
  /** A caller got a lease after waiting `waitedMs` (0 when one was idle). */
  acquired(waitedMs: number): void;
  /** A lease ended after being held `heldMs`. */
  released(heldMs: number): void;
  /** An acquire gave up at its deadline. */
  timedOut(): void;
}

/** Fans each call out to several trackers. */
export class TrackerFanOut implements PoolTracker {
  /** Calls every one of `trackers` in order. */
  constructor(readonly trackers: readonly PoolTracker[]) {}
  /** {@inheritDoc PoolTracker.created} */
  created(ms: number, ok: boolean): void {
    for (const t of this.trackers) t.created(ms, ok);
  }
  /** {@inheritDoc PoolTracker.acquired} */
  acquired(waitedMs: number): void {
    for (const t of this.trackers) t.acquired(waitedMs);
  }
  /** {@inheritDoc PoolTracker.released} */
  released(heldMs: number): void {
    for (const t of this.trackers) t.released(heldMs);
  }
  /** {@inheritDoc PoolTracker.timedOut} */
  timedOut(): void {
    for (const t of this.trackers) t.timedOut();
  }
}

/** The trackers behind `current` (none, one, or a fan-out's list). */
export function trackerList(current: PoolTracker | undefined): readonly PoolTracker[] {
  if (current === undefined) return [];
  return current instanceof TrackerFanOut ? current.trackers : [current];
}

/** One tracker for a list: none, the only one, or a fan-out. */
export function trackerOf(list: readonly PoolTracker[]): PoolTracker | undefined {
  return list.length <= 1 ? list[0] : new TrackerFanOut(list);
}

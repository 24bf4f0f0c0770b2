/**
 * `instrumentPool(pool)`: reports a pool through `@opentelemetry/api` with
 * the semantic conventions' instruments (see `conventions.ts`).
 *
 * @module
 */

import {
  type Attributes,
  type BatchObservableResult,
  type Histogram,
  type Meter,
  metrics,
  type Observable,
} from "@opentelemetry/api";
import type { PoolStats } from "../pool/types.ts";
import type { PoolTracker } from "../pool/tracker.ts";
import {
  CONNECTION_COUNT,
  CONNECTION_IDLE_MAX,
  CONNECTION_IDLE_MIN,
  CONNECTION_MAX,
  CONNECTION_STATE,
  CONNECTION_TIMEOUTS,
  CREATE_TIME,
  type InstrumentConvention,
  PENDING_REQUESTS,
  POOL_NAME,
  USE_TIME,
  WAIT_TIME,
} from "./conventions.ts";
import { TimingBuffer } from "./timing_buffer.ts";

/**
 * The meter (instrumentation scope) name. The meter comes from the global
 * meter provider: Deno's built-in exporter with `OTEL_DENO=true`, or the one
 * you set with `metrics.setGlobalMeterProvider()`; otherwise OpenTelemetry's
 * no-op meter.
 */
export const METER_NAME = "@poolkit/pool";

/** What {@link instrumentPool} needs of a pool: a `Pool`, `hsm.pool`, `postgresPool.pool`. */
export interface InstrumentablePool {
  /** A snapshot of the pool, read at each metrics collection. */
  stats(): PoolStats;
  /** Reports each create, acquire, release and timeout; returns the detach function. */
  track(tracker: PoolTracker): () => void;
}

/** What {@link instrumentPool} returns; `using` it stops recording at the end of the block. */
export interface PoolInstrumentation extends Disposable {
  /**
   * Records the buffered waits and uses now (done anyway at each metrics
   * collection and at exit).
   */
  flush(): void;
  /** Stops recording (idempotent): flushes, detaches from the pool, removes the callbacks. */
  stop(): void;
}

/** Options of {@link instrumentPool}. */
export interface InstrumentPoolOptions {
  /**
   * The value of `db.client.connection.pool.name`. Default the pool's
   * `name`; it must be unique within the application.
   */
  poolName?: string;
}

/**
 * Records the metrics of `pool` through `@opentelemetry/api`, named as
 * OpenTelemetry's semantic conventions name a client connection pool's, all
 * with `db.client.connection.pool.name`:
 *
 * - `db.client.connection.count` (`{connection}`, by `db.client.connection.state` = `idle` | `used`),
 *   `db.client.connection.idle.max`, `db.client.connection.idle.min`,
 *   `db.client.connection.max` (`{connection}`) and
 *   `db.client.connection.pending_requests` (`{request}`): read from `stats()`
 *   when metrics are collected, at no cost in between;
 * - `db.client.connection.timeouts` (`{timeout}`, counter);
 * - `db.client.connection.create_time`, `db.client.connection.wait_time` and
 *   `db.client.connection.use_time` (histograms in `s`, with the buckets of
 *   the pool's Prometheus histograms). Waits and uses are buffered per bucket
 *   on the hot path and recorded off it: at each collection, at exit, and
 *   from a timer once 4096 are waiting (see `timing_buffer.ts`); the
 *   exported histograms are exact.
 *
 * Call it once per pool. With Deno's built-in OpenTelemetry
 * (`OTEL_DENO=true`) nothing else is needed.
 *
 * @example Export a pool's metrics with Deno's built-in OpenTelemetry
 * ```ts ignore
 * import { Pool } from "@poolkit/pool";
 * import { instrumentPool } from "@poolkit/pool/otel";
 *
 * const pool = new Pool({ name: "db", create: () => connect(), max: 10 });
 * instrumentPool(pool); // then run with OTEL_DENO=true
 * ```
 *
 * @param pool The pool (or an adapter's `pool`).
 * @param options The pool name.
 * @returns A handle to flush the buffered timings now, or stop recording.
 * @throws {TypeError} When the pool name is empty.
 */
export function instrumentPool(
  pool: InstrumentablePool,
  options: InstrumentPoolOptions = {},
): PoolInstrumentation {
  const first = pool.stats();
  const poolName = options.poolName ?? first.name;
  if (typeof poolName !== "string" || poolName === "") {
    throw new TypeError(
      `instrumentPool: poolName must be a non-empty string (got ${JSON.stringify(poolName)}); ` +
        "give the pool a `name` or pass `poolName`",
    );
  }
  const meter = metrics.getMeter(METER_NAME);
  const attributes: Attributes = { [POOL_NAME]: poolName };
  const recorder = new TimingRecorder(meter, attributes, first);
  const gauges = observeStats(meter, pool, attributes, () => recorder.flush());
  const untrack = pool.track(recorder);
  const onUnload = () => recorder.flush();
  globalThis.addEventListener("unload", onUnload);
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    untrack();
    gauges.stop();
    globalThis.removeEventListener("unload", onUnload);
    recorder.flush();
  };
  return { flush: () => recorder.flush(), stop, [Symbol.dispose]: stop };
}

function histogram(meter: Meter, c: InstrumentConvention, boundsMs: readonly number[]) {
  return meter.createHistogram(c.name, {
    unit: c.unit,
    description: c.description,
    advice: { explicitBucketBoundaries: boundsMs.filter(Number.isFinite).map((ms) => ms / 1000) },
  });
}

/**
 * Buffered timings are recorded at each collection, or sooner once this many
 * are waiting (from a timer, off the acquire path): at about 0.5 µs per value
 * in Deno 2.9, that bounds one flush to a few milliseconds of event loop.
 */
const FLUSH_EVERY = 4096;

/** The pool's tracker: counts timings on the hot path, records them on flush. */
class TimingRecorder implements PoolTracker {
  readonly #attributes: Attributes;
  readonly #createTime: Histogram;
  readonly #waitTime: Histogram;
  readonly #useTime: Histogram;
  readonly #timeouts;
  readonly #waits: TimingBuffer;
  readonly #uses: TimingBuffer;
  #buffered = 0;

  constructor(meter: Meter, attributes: Attributes, stats: PoolStats) {
    this.#attributes = attributes;
    this.#createTime = histogram(meter, CREATE_TIME, stats.createTimeHistogram.bucketsMs);
    this.#waitTime = histogram(meter, WAIT_TIME, stats.acquireWaitHistogram.bucketsMs);
    this.#useTime = histogram(meter, USE_TIME, stats.useTimeHistogram.bucketsMs);
    this.#timeouts = meter.createCounter(CONNECTION_TIMEOUTS.name, {
      unit: CONNECTION_TIMEOUTS.unit,
      description: CONNECTION_TIMEOUTS.description,
    });
    this.#waits = new TimingBuffer(stats.acquireWaitHistogram.bucketsMs.filter(Number.isFinite));
    this.#uses = new TimingBuffer(stats.useTimeHistogram.bucketsMs.filter(Number.isFinite));
  }

  // Creates and timeouts are rare and slow already: recorded at once.
  created(ms: number, _ok: boolean): void {
    this.#createTime.record(ms / 1000, this.#attributes);
  }
  acquired(waitedMs: number): void {
    this.#waits.add(waitedMs);
    if (++this.#buffered === FLUSH_EVERY) this.#flushSoon();
  }
  released(heldMs: number): void {
    this.#uses.add(heldMs);
    if (++this.#buffered === FLUSH_EVERY) this.#flushSoon();
  }
  timedOut(): void {
    this.#timeouts.add(1, this.#attributes);
  }

  /** Records the buffered waits and uses. */
  flush(): void {
    this.#buffered = 0;
    this.#waits.flushTo(this.#waitTime, this.#attributes);
    this.#uses.flushTo(this.#useTime, this.#attributes);
  }

  #flushSoon(): void {
    Deno.unrefTimer(setTimeout(() => this.flush(), 0));
  }
}

/** The observable instruments, read from `stats()` at each collection. */
function observeStats(
  meter: Meter,
  pool: InstrumentablePool,
  attributes: Attributes,
  beforeObserving: () => void,
): { stop(): void } {
  const upDown = (c: InstrumentConvention) =>
    meter.createObservableUpDownCounter(c.name, { unit: c.unit, description: c.description });
  const count = upDown(CONNECTION_COUNT);
  const idleMax = upDown(CONNECTION_IDLE_MAX);
  const idleMin = upDown(CONNECTION_IDLE_MIN);
  const max = upDown(CONNECTION_MAX);
  const pending = upDown(PENDING_REQUESTS);
  const idle = { ...attributes, [CONNECTION_STATE]: "idle" };
  const used = { ...attributes, [CONNECTION_STATE]: "used" };
  const observables: Observable[] = [count, idleMax, idleMin, max, pending];
  const callback = (result: BatchObservableResult) => {
    beforeObserving();
    const s = pool.stats();
    result.observe(count, s.idle, idle);
    result.observe(count, s.inUse, used);
    result.observe(idleMax, s.maxIdle, attributes);
    result.observe(idleMin, s.min, attributes);
    result.observe(max, s.max, attributes);
    result.observe(pending, s.pending, attributes);
  };
  meter.addBatchObservableCallback(callback, observables);
  return { stop: () => meter.removeBatchObservableCallback(callback, observables) };
}

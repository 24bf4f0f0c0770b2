/**
 * `instrumentPool(pool)`: reports a pool through `@opentelemetry/api` with
 * the semantic conventions' instruments (see `conventions.ts`).
 *
 * @module
 */

import {
  type Attributes,
  type BatchObservableResult,
  type Counter,
  type Meter,
  metrics,
  type Observable,
} from "@opentelemetry/api";
import type { HistogramSnapshot, PoolStats, PoolTracker } from "../pool/types.ts";
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
import { HistogramDelta } from "./histogram_delta.ts";
import type { HistogramSpec, Recorder, RecordingJob } from "./recording_job.ts";
import { recorderForGlobalProvider } from "./recording_thread.ts";

/**
 * The meter (instrumentation scope) name. The meter comes from the global
 * meter provider: Deno's built-in exporter with `OTEL_DENO=true`, or the one
 * you set with `metrics.setGlobalMeterProvider()`; otherwise OpenTelemetry's
 * no-op meter.
 */
export const METER_NAME = "@poolkit/pool";

/** What {@link instrumentPool} needs of a pool: a `Pool`, `hsm.pool`, `postgresPool.pool`. */
export interface InstrumentablePool {
  /** A snapshot of the pool, read at each metrics collection and every 250 ms. */
  stats(): PoolStats;
  /**
   * Tells a tracker of the pool's close (a `Pool` has it): the
   * instrumentation takes its last reading then and stops. Without it, the
   * instrumentation stops at the first reading that finds the pool closed.
   */
  track?(tracker: PoolTracker): () => void;
}

/** What {@link instrumentPool} returns; `using` it stops recording at the end of the block. */
export interface PoolInstrumentation extends Disposable {
  /**
   * Records the waits, uses, creates and timeouts counted since the last
   * flush now (done anyway at each metrics collection, every 250 ms, when
   * the pool closes and at exit).
   */
  flush(): void;
  /**
   * Resolves once everything flushed so far is in the histograms (with
   * `OTEL_DENO=true` they are recorded on a thread of their own; see
   * `recording_thread.ts`), or after a bounded wait.
   */
  settled(): Promise<void>;
  /**
   * Stops recording (idempotent): flushes, then removes the timer and the
   * callbacks. Done on its own when the pool closes.
   */
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
 * How often the timings counted since the last flush are recorded, besides
 * each collection: often enough that one flush stays short (in Deno 2.9 a
 * recorded value costs about 0.3–0.7 µs, so 10,000 acquires a second make
 * about 2–4 ms of recording every 250 ms), on an unref'd timer. Internal:
 * not exported from the entry point.
 */
export const FLUSH_EVERY_MS = 250;

/**
 * Records the metrics of `pool` through `@opentelemetry/api`, named as
 * OpenTelemetry's semantic conventions name a client connection pool's, all
 * with `db.client.connection.pool.name`:
 *
 * - `db.client.connection.count` (`{connection}`, by `db.client.connection.state` = `idle` | `used`),
 *   `db.client.connection.idle.max`, `db.client.connection.idle.min`,
 *   `db.client.connection.max` (`{connection}`) and
 *   `db.client.connection.pending_requests` (`{request}`): read from `stats()`
 *   when metrics are collected;
 * - `db.client.connection.timeouts` (`{timeout}`, counter);
 * - `db.client.connection.create_time`, `db.client.connection.wait_time` and
 *   `db.client.connection.use_time` (histograms in `s`, with the buckets of
 *   the pool's Prometheus histograms).
 *
 * Nothing is added to the acquire/release path: the pool already counts
 * every wait, use, create and timeout for `stats()` and Prometheus, and
 * what they gained is recorded off that path, at each collection, every
 * 250 ms, when the pool closes and at exit (see `histogram_delta.ts`). The
 * exported histograms are exact: count, sum, buckets, min and max.
 *
 * The instrumentation ends with its pool: when `close()` resolves it has
 * taken its last reading and left no timer behind.
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
 * @returns A handle to flush now, or stop recording.
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
  const recorder = recorderForGlobalProvider();
  const poolRecorder = new PoolRecorder(meter, attributes, first, recorder);
  let stopped = false;
  const flush = (stats = pool.stats()) => {
    poolRecorder.flush(stats);
    if (stats.state === "closed") stop(); // a pool that cannot tell us of its close
  };
  const gauges = observeStats(meter, attributes, () => {
    const stats = pool.stats();
    flush(stats);
    return { stats, recorded: recorder.settled() };
  });
  const timer = setInterval(() => flush(), FLUSH_EVERY_MS);
  Deno.unrefTimer(timer);
  const onUnload = () => {
    flush();
    recorder.settleNow();
  };
  globalThis.addEventListener("unload", onUnload);
  // Only `closed`: nothing is added to the acquire/release path.
  const untrack = pool.track?.({ closed: () => stop() });
  const stop = () => {
    if (stopped) return;
    stopped = true;
    clearInterval(timer);
    gauges.stop();
    globalThis.removeEventListener("unload", onUnload);
    untrack?.();
    poolRecorder.flush(pool.stats());
  };
  return {
    flush: () => flush(),
    settled: () => recorder.settled(),
    stop,
    [Symbol.dispose]: stop,
  };
}

function histogramSpec(c: InstrumentConvention, boundsMs: readonly number[]): HistogramSpec {
  return {
    meter: METER_NAME,
    name: c.name,
    unit: c.unit,
    description: c.description,
    boundsS: boundsMs.filter(Number.isFinite).map((ms) => ms / 1000),
  };
}

/** Hands what the pool's own counters gained since the last flush to the recorder. */
class PoolRecorder {
  readonly #attributes: Attributes;
  readonly #recorder: Recorder;
  readonly #histograms: {
    spec: HistogramSpec;
    delta: HistogramDelta;
    of: (s: PoolStats) => HistogramSnapshot;
  }[];
  readonly #timeouts: Counter;
  #timedOut = 0;

  constructor(meter: Meter, attributes: Attributes, stats: PoolStats, recorder: Recorder) {
    this.#attributes = attributes;
    this.#recorder = recorder;
    const make = (c: InstrumentConvention, of: (s: PoolStats) => HistogramSnapshot) => ({
      spec: histogramSpec(c, of(stats).bucketsMs),
      delta: new HistogramDelta(),
      of,
    });
    this.#histograms = [
      make(CREATE_TIME, (s) => s.createTimeHistogram),
      make(WAIT_TIME, (s) => s.acquireWaitHistogram),
      make(USE_TIME, (s) => s.useTimeHistogram),
    ];
    this.#timeouts = meter.createCounter(CONNECTION_TIMEOUTS.name, {
      unit: CONNECTION_TIMEOUTS.unit,
      description: CONNECTION_TIMEOUTS.description,
    });
  }

  /** Hands over the growth since the last flush, as read in `stats`. */
  flush(stats: PoolStats): void {
    const jobs: RecordingJob[] = [];
    for (const h of this.#histograms) {
      const plan = h.delta.next(h.of(stats));
      if (plan.length > 0) jobs.push({ spec: h.spec, attributes: this.#attributes, plan });
    }
    this.#recorder.record(jobs);
    if (stats.timedOut > this.#timedOut) {
      this.#timeouts.add(stats.timedOut - this.#timedOut, this.#attributes);
      this.#timedOut = stats.timedOut;
    }
  }
}

/** The observable instruments, read from `stats()` at each collection. */
function observeStats(
  meter: Meter,
  attributes: Attributes,
  collect: () => { stats: PoolStats; recorded: Promise<void> },
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
  // Returns once the histograms hold what the pool counted: the collection waits for it.
  const callback = (result: BatchObservableResult) => {
    const { stats: s, recorded } = collect();
    result.observe(count, s.idle, idle);
    result.observe(count, s.inUse, used);
    result.observe(idleMax, s.maxIdle, attributes);
    result.observe(idleMin, s.min, attributes);
    result.observe(max, s.max, attributes);
    result.observe(pending, s.pending, attributes);
    return recorded;
  };
  meter.addBatchObservableCallback(callback, observables);
  return { stop: () => meter.removeBatchObservableCallback(callback, observables) };
}

/**
 * What a pool measures and how it is exported. The pool records durations
 * in {@link DurationHistogram}s and hands timings to trackers as they happen
 * (`pool.track()`); {@link formatPrometheus} turns {@link PoolStats} snapshots into the
 * text exposition format (version 0.0.4), so any HTTP server can serve them
 * on `/metrics`. It only reads `stats()`, so it works with a `Pool` or with
 * anything else that has a `stats()` method returning {@link PoolStats}.
 *
 * @example Serve the metrics of a pool
 * ```ts ignore
 * import { formatPrometheus, PROMETHEUS_CONTENT_TYPE } from "@poolkit/pool";
 *
 * Deno.serve((req) =>
 *   new URL(req.url).pathname === "/metrics"
 *     ? new Response(formatPrometheus([pool]), {
 *       headers: { "content-type": PROMETHEUS_CONTENT_TYPE },
 *     })
 *     : new Response("not found", { status: 404 })
 * );
 * ```
 *
 * @module
 */

import type {
  BreakerState,
  HistogramSnapshot,
  PoolState,
  PoolStats,
  PoolTracker,
} from "./types.ts";

/** The `Content-Type` of the text that {@link formatPrometheus} returns. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Anything whose statistics can be exported: a `Pool` or an adapter handle. */
export interface PoolStatsSource {
  /** Returns a snapshot of the pool's statistics. */
  stats(): PoolStats;
}

/** Options of {@link formatPrometheus}. */
export interface PrometheusOptions {
  /**
   * Prepended to every metric name, followed by `_`. Default `"pool"`, which
   * gives names such as `pool_in_use` and `pool_acquired_total`.
   */
  prefix?: string;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const BREAKER_STATES: readonly BreakerState[] = ["closed", "open", "half-open"];
const POOL_STATES: readonly PoolState[] = ["open", "closing", "closed"];

/** A metric family read straight from one numeric field of the stats. */
interface SimpleFamily {
  suffix: string;
  type: "gauge" | "counter";
  help: string;
  value: (s: PoolStats) => number;
}

const GAUGES: readonly SimpleFamily[] = [
  { suffix: "size", type: "gauge", help: "Resources alive (idle + in use).", value: (s) => s.size },
  {
    suffix: "idle",
    type: "gauge",
    help: "Resources waiting to be handed out.",
    value: (s) => s.idle,
  },
  { suffix: "in_use", type: "gauge", help: "Resources lent out.", value: (s) => s.inUse },
  {
    suffix: "pending",
    type: "gauge",
    help: "Callers waiting for a resource.",
    value: (s) => s.pending,
  },
  {
    suffix: "creating",
    type: "gauge",
    help: "Resource creations under way.",
    value: (s) => s.creating,
  },
  { suffix: "min_size", type: "gauge", help: "Configured minimum size.", value: (s) => s.min },
  { suffix: "max_size", type: "gauge", help: "Configured maximum size.", value: (s) => s.max },
];

const COUNTERS: readonly SimpleFamily[] = [
  {
    suffix: "created_total",
    type: "counter",
    help: "Resources created.",
    value: (s) => s.created,
  },
  {
    suffix: "destroyed_total",
    type: "counter",
    help: "Resources destroyed.",
    value: (s) => s.destroyed,
  },
  {
    suffix: "acquired_total",
    type: "counter",
    help: "Leases handed out.",
    value: (s) => s.acquired,
  },
  {
    suffix: "released_total",
    type: "counter",
    help: "Leases ended (released or destroyed).",
    value: (s) => s.released,
  },
  {
    suffix: "acquire_timeouts_total",
    type: "counter",
    help: "Acquires that gave up at their deadline.",
    value: (s) => s.timedOut,
  },
  {
    suffix: "acquire_aborted_total",
    type: "counter",
    help: "Acquires ended by their caller's abort signal.",
    value: (s) => s.aborted,
  },
  {
    suffix: "create_errors_total",
    type: "counter",
    help: "Resource creations that failed.",
    value: (s) => s.createErrors,
  },
  {
    suffix: "leaks_total",
    type: "counter",
    help: "Leases reported as leaked (held longer than leakDetectionMs).",
    value: (s) => s.leaks,
  },
  {
    suffix: "errors_total",
    type: "counter",
    help: "Errors in background work (top-up, health check, destroy, reset).",
    value: (s) => s.errors,
  },
];

/** A histogram family read from one of the stats' histogram snapshots (ms, shown in s). */
interface HistogramFamily {
  suffix: string;
  help: string;
  value: (s: PoolStats) => HistogramSnapshot;
}

// The same three timings as OpenTelemetry's db.client.connection.wait_time, create_time, use_time.
const HISTOGRAMS: readonly HistogramFamily[] = [
  {
    suffix: "acquire_wait_seconds",
    help: "Time callers waited for a lease, in seconds (every acquire since the pool started).",
    value: (s) => s.acquireWaitHistogram,
  },
  {
    suffix: "create_time_seconds",
    help: "Time each resource creation took, failed ones included, in seconds.",
    value: (s) => s.createTimeHistogram,
  },
  {
    suffix: "use_time_seconds",
    help: "Time each lease was held, from acquire to release, in seconds.",
    value: (s) => s.useTimeHistogram,
  },
];

/**
 * Formats the statistics of one or more pools as Prometheus text exposition
 * (version 0.0.4). Every series carries a `pool` label with the pool's name;
 * each metric family gets one `# HELP` and one `# TYPE` line. Serve it with
 * {@link PROMETHEUS_CONTENT_TYPE}.
 *
 * Families (with the default prefix `pool`): gauges `pool_size`,
 * `pool_idle`, `pool_in_use`, `pool_pending`, `pool_creating`,
 * `pool_min_size`, `pool_max_size`; counters `pool_created_total`,
 * `pool_destroyed_total`, `pool_acquired_total`, `pool_released_total`,
 * `pool_acquire_timeouts_total`, `pool_acquire_aborted_total`,
 * `pool_create_errors_total`, `pool_leaks_total`, `pool_errors_total`; the
 * histograms `pool_acquire_wait_seconds`, `pool_create_time_seconds` and
 * `pool_use_time_seconds`; and the state-set gauges
 * `pool_breaker_state{state}` and `pool_state{state}` (1 for the current
 * state, 0 for the others).
 *
 * @param pools Pools (or anything with `stats()`), or stats snapshots.
 * @param options The metric name prefix.
 * @returns The exposition text, ending with a newline.
 * @throws {TypeError} When the prefix is not a valid metric name, or two
 * pools share a name (their series would collide).
 */
export function formatPrometheus(
  pools: Iterable<PoolStatsSource | PoolStats>,
  options: PrometheusOptions = {},
): string {
  const prefix = options.prefix ?? "pool";
  if (!METRIC_NAME.test(prefix)) {
    throw new TypeError(
      `formatPrometheus: prefix ${
        JSON.stringify(prefix)
      } is not a valid metric name; use letters, digits, "_" and ":", not starting with a digit`,
    );
  }
  const snapshots = collect(pools);
  const out: string[] = [];
  for (const family of [...GAUGES, ...COUNTERS]) {
    const name = `${prefix}_${family.suffix}`;
    header(out, name, family.type, family.help);
    for (const s of snapshots) out.push(`${name}{${poolLabel(s)}} ${number(family.value(s))}`);
  }
  for (const h of HISTOGRAMS) histogram(out, `${prefix}_${h.suffix}`, h, snapshots);
  stateSet(
    out,
    `${prefix}_breaker_state`,
    "Circuit breaker state: 1 for the current state (closed, open or half-open), 0 for the " +
      "others. Open means resource creation is failing and acquires fail fast.",
    snapshots,
    BREAKER_STATES,
    (s) => s.breaker,
  );
  stateSet(
    out,
    `${prefix}_state`,
    "Pool lifecycle state: 1 for the current state (open, closing or closed), 0 for the others.",
    snapshots,
    POOL_STATES,
    (s) => s.state,
  );
  return out.join("\n") + "\n";
}

function collect(pools: Iterable<PoolStatsSource | PoolStats>): PoolStats[] {
  const snapshots: PoolStats[] = [];
  const names = new Set<string>();
  for (const p of pools) {
    const s = isSource(p) ? p.stats() : p;
    if (names.has(s.name)) {
      throw new TypeError(
        `formatPrometheus: two pools are named ${
          JSON.stringify(s.name)
        }; give each pool a distinct \`name\` so their series do not collide`,
      );
    }
    names.add(s.name);
    snapshots.push(s);
  }
  return snapshots;
}

function isSource(p: PoolStatsSource | PoolStats): p is PoolStatsSource {
  return typeof (p as PoolStatsSource).stats === "function";
}

function histogram(
  out: string[],
  name: string,
  family: HistogramFamily,
  snapshots: readonly PoolStats[],
): void {
  header(out, name, "histogram", family.help);
  for (const s of snapshots) {
    const h = family.value(s);
    const pool = poolLabel(s);
    let sawInf = false;
    for (let i = 0; i < h.bucketsMs.length; i++) {
      const le = h.bucketsMs[i] / 1000;
      if (le === Infinity) sawInf = true;
      out.push(`${name}_bucket{${pool},le="${number(le)}"} ${number(h.counts[i])}`);
    }
    if (!sawInf) out.push(`${name}_bucket{${pool},le="+Inf"} ${number(h.count)}`);
    out.push(`${name}_sum{${pool}} ${number(h.sumMs / 1000)}`);
    out.push(`${name}_count{${pool}} ${number(h.count)}`);
  }
}

function stateSet<T extends string>(
  out: string[],
  name: string,
  help: string,
  snapshots: readonly PoolStats[],
  states: readonly T[],
  current: (s: PoolStats) => T,
): void {
  header(out, name, "gauge", help);
  for (const s of snapshots) {
    const now = current(s);
    for (const state of states) {
      out.push(`${name}{${poolLabel(s)},state="${state}"} ${state === now ? 1 : 0}`);
    }
  }
}

/** Writes the HELP and TYPE lines of metric family `name`. */
export function header(out: string[], name: string, type: string, help: string): void {
  out.push(`# HELP ${name} ${help.replaceAll("\\", "\\\\").replaceAll("\n", "\\n")}`);
  out.push(`# TYPE ${name} ${type}`);
}

function poolLabel(s: PoolStats): string {
  return `pool="${escapeLabelValue(s.name)}"`;
}

/** Label values escape backslash, double quote and line feed (and nothing else). */
export function escapeLabelValue(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

/** Sample values in the spellings Prometheus parses (Go's ParseFloat). */
function number(n: number): string {
  if (Number.isNaN(n)) return "NaN";
  if (n === Infinity) return "+Inf";
  if (n === -Infinity) return "-Inf";
  return String(n);
}

// ---- durations ---------------------------------------------------------------------------

/** Histogram bucket bounds for acquire wait, create time and use time, in milliseconds. */
export const WAIT_BUCKETS_MS: readonly number[] = [
  1,
  5,
  10,
  25,
  50,
  100,
  250,
  500,
  1_000,
  2_500,
  5_000,
  10_000,
  30_000,
];

/** Milliseconds rounded to the microsecond: what `stats()` reports of a duration. */
export function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

const WINDOW = 1024; // recent waits kept for percentiles; a power of two

/**
 * A cumulative duration histogram since the start (the shape Prometheus
 * wants): a bucket count per bound, the count and the sum; also the sum per
 * bucket and the min and max, so that an exporter can replay it exactly
 * (OpenTelemetry's histograms carry min and max).
 */
export class DurationHistogram {
  // Per bucket, the last one above every bound: count and sum.
  readonly #perBucket = new Float64Array(WAIT_BUCKETS_MS.length + 1);
  readonly #sumPerBucket = new Float64Array(WAIT_BUCKETS_MS.length + 1);
  #count = 0;
  #sumMs = 0;
  #minMs = Infinity;
  #maxMs = -Infinity;

  /** Records one duration. */
  record(ms: number): void {
    this.#count++;
    this.#sumMs += ms;
    if (ms < this.#minMs) this.#minMs = ms;
    if (ms > this.#maxMs) this.#maxMs = ms;
    let i = 0;
    while (i < WAIT_BUCKETS_MS.length && ms > WAIT_BUCKETS_MS[i]) i++;
    this.#perBucket[i]++;
    this.#sumPerBucket[i] += ms;
  }

  /** The cumulative histogram since the start, durations rounded to the microsecond. */
  snapshot(): HistogramSnapshot {
    let running = 0;
    const counts = WAIT_BUCKETS_MS.map((_, i) => (running += this.#perBucket[i]));
    const empty = this.#count === 0;
    return {
      bucketsMs: WAIT_BUCKETS_MS,
      counts,
      count: this.#count,
      sumMs: roundMs(this.#sumMs),
      sumsMs: Array.from(this.#sumPerBucket, roundMs),
      minMs: empty ? 0 : roundMs(this.#minMs),
      maxMs: empty ? 0 : roundMs(this.#maxMs),
    };
  }
}

/**
 * Records how long each acquire waited: a window of the recent waits for
 * percentiles and a cumulative histogram since the start for metrics.
 * Recording is a few array writes, cheap enough for the acquire fast path.
 */
export class WaitStats {
  #recent = new Float64Array(WINDOW);
  #count = 0;
  readonly #histogram = new DurationHistogram();

  /** Records one acquire's wait. */
  record(ms: number): void {
    this.#recent[this.#count & (WINDOW - 1)] = ms;
    this.#count++;
    this.#histogram.record(ms);
  }

  /** p50, p99 and max over the recent window. */
  percentiles(): { p50: number; p99: number; max: number } {
    const n = Math.min(this.#count, WINDOW);
    if (n === 0) return { p50: 0, p99: 0, max: 0 };
    const sorted = this.#recent.slice(0, n).sort();
    const at = (q: number) => roundMs(sorted[Math.min(n - 1, Math.ceil(q * n) - 1)]);
    return { p50: at(0.5), p99: at(0.99), max: roundMs(sorted[n - 1]) };
  }

  /** The cumulative histogram since the start. */
  histogram(): HistogramSnapshot {
    return this.#histogram.snapshot();
  }
}

// ---- trackers: timings as they happen ---------------------------------------------------

/** A tracker's per-call methods, all present: what the pool calls on its hot path. */
export type Timings = Required<Pick<PoolTracker, "created" | "acquired" | "released" | "timedOut">>;

const TIMINGS = ["created", "acquired", "released", "timedOut"] as const;

/** Fans each call out to the trackers that have a method for it. */
class TimingsFanOut implements Timings {
  readonly #created: Timings["created"][];
  readonly #acquired: Timings["acquired"][];
  readonly #released: Timings["released"][];
  readonly #timedOut: Timings["timedOut"][];

  constructor(trackers: readonly PoolTracker[]) {
    this.#created = trackers.filter((t) => t.created).map((t) => t.created!.bind(t));
    this.#acquired = trackers.filter((t) => t.acquired).map((t) => t.acquired!.bind(t));
    this.#released = trackers.filter((t) => t.released).map((t) => t.released!.bind(t));
    this.#timedOut = trackers.filter((t) => t.timedOut).map((t) => t.timedOut!.bind(t));
  }
  created(ms: number, ok: boolean): void {
    for (const f of this.#created) f(ms, ok);
  }
  acquired(waitedMs: number): void {
    for (const f of this.#acquired) f(waitedMs);
  }
  released(heldMs: number): void {
    for (const f of this.#released) f(heldMs);
  }
  timedOut(): void {
    for (const f of this.#timedOut) f();
  }
}

/**
 * What the pool calls on its hot path for `trackers`: nothing when none of
 * them wants a timing (as OpenTelemetry's, which only wants to hear of the
 * close), the tracker itself when it is the only one and has every method,
 * else a fan-out.
 */
export function timingsOf(trackers: readonly PoolTracker[]): Timings | undefined {
  const timed = trackers.filter((t) => TIMINGS.some((name) => t[name] !== undefined));
  if (timed.length === 0) return undefined;
  const only = timed[0];
  if (timed.length === 1 && TIMINGS.every((name) => only[name] !== undefined)) {
    return only as Timings;
  }
  return new TimingsFanOut(timed);
}

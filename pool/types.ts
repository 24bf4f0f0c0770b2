/**
 * The public shapes of the pool: what you pass in ({@link PoolOptions}),
 * what you get out ({@link PoolStats}, {@link PoolEvent}) and the per-call
 * options of {@link AcquireOptions}. Behaviour lives in `pool.ts`.
 *
 * @module
 */

/** Tells the pool how to make, check, clean and dispose of one resource. */
export interface ResourceFactory<R> {
  /**
   * Makes one resource, returned or resolved. The signal aborts when
   * nobody needs it any more (the pool closed); a resource that arrives
   * anyway is kept or destroyed, never lost.
   */
  create: (signal: AbortSignal) => R | Promise<R>;
  /** Disposes of a resource for good. Errors become `error` events. */
  destroy?: (resource: R) => void | Promise<void>;
  /**
   * Checks a resource before it is handed out (see `validateAfterMs`) and in
   * background health checks. `false` or a throw: the pool destroys it and
   * hands out another; the caller never sees it.
   */
  validate?: (resource: R, signal: AbortSignal) => boolean | Promise<boolean>;
  /** Cleans a resource on release, before it goes idle. A throw destroys it. */
  reset?: (resource: R) => void | Promise<void>;
  /**
   * Says whether an error thrown inside `use()`/`map()` means the resource
   * is broken: `true` destroys it instead of releasing it.
   */
  isFatal?: (error: unknown, resource: R) => boolean;
  /**
   * Says whether a `create` error is permanent: retrying cannot fix it (a
   * wrong password or PIN, an unknown database). `true` opens the circuit
   * breaker at once, with no retry and no probe until `cooldownMs` has passed
   * (then only a caller's acquire probes, never the top-up to `min`) or
   * `pool.invalidate()` is called; callers get a `CircuitOpenError` whose
   * message carries this error's.
   */
  isPermanent?: (error: unknown) => boolean;
}

/**
 * A pool's own settings: everything in {@link PoolOptions} but the factory
 * hooks. Adapters take this as their `pool` option and supply the hooks.
 */
export type PoolSettings<R> = Omit<PoolOptions<R>, keyof ResourceFactory<R>>;

/** Circuit-breaker settings: stop calling `create` while the backend is down. */
export interface BreakerOptions {
  /** Create failures in a row that open the breaker. Default 5. */
  threshold?: number;
  /**
   * While open, one probe create runs every `cooldownMs / threshold` (at
   * most `threshold` attempts per cooldown); after a permanent failure, one
   * after the whole `cooldownMs`. Default 5000.
   */
  cooldownMs?: number;
}

/** Everything a {@link Pool} is built from: the factory plus sizing and timing. */
export interface PoolOptions<R> extends ResourceFactory<R> {
  /** Shown in errors, events, stats and metrics. Default `"pool"`. */
  name?: string;
  /** Resources kept alive and topped up in the background. Default 0. */
  min?: number;
  /** Never more resources alive or being created. Default 10. */
  max?: number;
  /** Idle resources above this are destroyed on release. Default `max`. */
  maxIdle?: number;
  /** How long an acquire may wait. Default 30 000; `Infinity` allowed. */
  acquireTimeoutMs?: number;
  /** Idle resources above `min` are evicted after this. Default 300 000. */
  idleTimeoutMs?: number;
  /** Never handed out past this age (with up to 2% jitter). Default 1 800 000. */
  maxLifetimeMs?: number;
  /** Destroyed after this many leases. Default `Infinity`. */
  maxUses?: number;
  /** Validate on borrow only when idle at least this long. Default 0 (always). */
  validateAfterMs?: number;
  /** A lease held longer emits a `leak` event with the acquire-site stack. Default 0 (off). */
  leakDetectionMs?: number;
  /** Also validate idle resources in the background at this interval. Default 0 (off). */
  healthCheckIntervalMs?: number;
  /**
   * How long the pool waits for `validate`, `reset` or `destroy` before it
   * gives up on it: the resource is destroyed (or forgotten), and the hang
   * is an `error` event, never a caller's wait. Default 5000.
   */
  hookTimeoutMs?: number;
  /**
   * Circuit breaker on create failures, or `false` to turn the counting off
   * (a permanent failure, see `isPermanent`, still opens it for 5000 ms).
   */
  breaker?: BreakerOptions | false;
  /** Idle reuse order. Default `"lifo"` (warm resources first). */
  order?: "lifo" | "fifo";
  /** A nested `use()` in the same async context reuses the outer resource. Default false. */
  reentrant?: boolean;
  /** An acquire beyond this many waiters fails at once with `PoolOverloadedError`. Default `Infinity`. */
  maxWaiting?: number;
}

/** Per-call options of `acquire()`, `use()` and `map()`. */
export interface AcquireOptions {
  /** Aborting it gives up the wait (rejecting with `signal.reason`) or, in `use()`, tells `fn`. */
  signal?: AbortSignal;
  /** Overrides the pool's `acquireTimeoutMs` for this call. */
  timeoutMs?: number;
}

/** Options of `map()`: acquire options plus how many items run at once. */
export interface MapOptions extends AcquireOptions {
  /** Items in flight at once; capped at the pool's `max`. Default `max`. */
  concurrency?: number;
}

/** Options of `close()`. */
export interface CloseOptions {
  /** Stop waiting for leases after this long and destroy what is still out. Default `Infinity`. */
  timeoutMs?: number;
}

/** Options of `events()`. */
export interface EventsOptions {
  /** Ends the stream when aborted. */
  signal?: AbortSignal;
  /** Events kept for a slow reader before the oldest are dropped. Default 1024. */
  bufferSize?: number;
}

/** The pool's lifecycle. */
export type PoolState = "open" | "closing" | "closed";

/** The circuit breaker's state. */
export type BreakerState = "closed" | "open" | "half-open";

/** A snapshot of a pool: its size, its traffic counters and its wait times. */
export interface PoolStats {
  /** The pool's name. */
  name: string;
  /** Lifecycle state. */
  state: PoolState;
  /** Configured minimum. */
  min: number;
  /** Configured maximum. */
  max: number;
  /** Idle resources kept at most (`maxIdle`, default `max`). */
  maxIdle: number;
  /** Resources alive now (idle + in use). */
  size: number;
  /** Resources waiting to be handed out. */
  idle: number;
  /** Resources lent out. */
  inUse: number;
  /** Callers waiting for a resource. */
  pending: number;
  /** `create` calls under way. */
  creating: number;
  /** Resources created since the start. */
  created: number;
  /** Resources destroyed since the start. */
  destroyed: number;
  /** Leases handed out since the start. */
  acquired: number;
  /** Leases ended since the start (released or destroyed). */
  released: number;
  /** Acquires that gave up at their deadline. */
  timedOut: number;
  /** Acquires ended by their caller's signal. */
  aborted: number;
  /** `create` calls that failed. */
  createErrors: number;
  /** Leases reported as leaked. */
  leaks: number;
  /** Errors and hangs in background work (top-up create, health check, destroy, reset). */
  errors: number;
  /** Circuit breaker state. */
  breaker: BreakerState;
  /** Time callers waited for a lease, over the recent acquires (ms). */
  acquireWaitMs: { p50: number; p99: number; max: number };
  /** Every acquire's wait since the start (ms). */
  acquireWaitHistogram: HistogramSnapshot;
  /** How long every `create` took since the start, failed ones included (ms). */
  createTimeHistogram: HistogramSnapshot;
  /** How long every lease was held, acquire to release, since the start (ms). */
  useTimeHistogram: HistogramSnapshot;
}

/**
 * Durations since the start as a cumulative histogram (the shape Prometheus
 * wants): `counts[i]` of them took at most `bucketsMs[i]`; `count` and
 * `sumMs` cover all of them.
 */
export interface HistogramSnapshot {
  /** Upper bounds of the buckets, ascending (ms). */
  bucketsMs: readonly number[];
  /** Cumulative count per bound. */
  counts: number[];
  /** How many were recorded. */
  count: number;
  /** Their sum (ms). */
  sumMs: number;
  /**
   * The sum per bucket (ms), not cumulative: one entry per bound, then one
   * for the durations above the last bound.
   */
  sumsMs: number[];
  /** The shortest (ms); 0 while `count` is 0. */
  minMs: number;
  /** The longest (ms); 0 while `count` is 0. */
  maxMs: number;
}

/** What happens in a pool, as seen by `events()`. */
export type PoolEvent =
  | { type: "create"; id: number }
  | { type: "createError"; error: unknown }
  | { type: "destroy"; id: number; reason: string }
  | { type: "acquire"; id: number; waitedMs: number }
  | { type: "release"; id: number }
  | { type: "timeout"; waitedMs: number }
  | { type: "abort"; waitedMs: number }
  | { type: "leak"; id: number; heldMs: number; stack: string }
  | { type: "breaker"; state: BreakerState; cause?: unknown }
  | { type: "error"; during: string; error: unknown }
  | { type: "resize"; min: number; max: number }
  | { type: "close" };

/**
 * Receives a pool's timings as they happen (HikariCP's `IMetricsTracker`):
 * what an exporter such as OpenTelemetry needs that a `stats()` snapshot
 * cannot give. Attach one with `pool.track(tracker)`; every method is
 * optional. The per-call ones run on the acquire/release path, so keep them
 * to a few arithmetic operations.
 */
export interface PoolTracker {
  /** A `create` settled after `ms` milliseconds; `ok` is false when it failed. */
  created?(ms: number, ok: boolean): void;
  /** A caller got a lease after waiting `waitedMs` (0 when one was idle). */
  acquired?(waitedMs: number): void;
  /** A lease ended after being held `heldMs`. */
  released?(heldMs: number): void;
  /** An acquire gave up at its deadline. */
  timedOut?(): void;
  /** The pool closed (its `close()` is about to resolve): the last call a tracker gets. */
  closed?(): void;
}

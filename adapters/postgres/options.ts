/**
 * What `createPostgresPool` accepts, checked strictly: an unknown option, at the top, in `pool`
 * or in a call's options, is a `TypeError` naming it and the nearest known one. Also the pool
 * strategies psycopg2 and SQLAlchemy users know, as ready-made `pool` settings.
 *
 * @module
 */
import type { PoolSettings } from "../../mod.ts";
import { rejectUnknownOptions } from "../../pool/options.ts";
import type { DriverOptions, PooledConnection } from "./connection.ts";
import type { Target } from "./errors.ts";

/** The pool's own settings (everything but the factory, which the adapter provides). */
export type PostgresPoolSettings = PoolSettings<PooledConnection>;

/**
 * How a connection is cleaned when a lease ends. A transaction left open is always rolled back.
 *
 * - `"always"` (default): the session is made as clean as a new connection's: settings (`SET`,
 *   `SET ROLE`, `SET SESSION AUTHORIZATION`, `set_config`), temporary tables, advisory locks,
 *   `LISTEN`, cursors, SQL-level prepared statements (also those made inside functions),
 *   sequence state. Sent as the lease ends, without waiting for its answer.
 * - `"never"`: only the rollback. Session state stays for the next borrower.
 */
export type SessionReset = "always" | "never";

/** Options of {@link createPostgresPool}: the URL, pool settings and postgres.js options. */
export interface PostgresPoolOptions extends DriverOptions {
  /** Connection URL. Default: the `DATABASE_URL` environment variable. */
  url?: string;
  /**
   * Pool settings. The adapter's defaults differ from the core's in three places:
   * `name: "postgres"`, `reentrant: true` (nested calls join the outer connection and
   * transaction) and `validateAfterMs: 1000` (ping a connection idle for a second or more;
   * `Infinity` turns validation off). A connection whose socket is known to be closed is never
   * lent, whatever `validateAfterMs` says.
   */
  pool?: PostgresPoolSettings;
  /** How each connection is cleaned when a lease ends (see {@link SessionReset}). */
  reset?: SessionReset;
  /**
   * How many one-shot `query()` statements (outside `use()`/`transaction()`, without call
   * options) may share one lease, pipelined on its connection; the cleaning then runs once per
   * lease. Only statements that cannot change the session or a transaction share. Default 100;
   * `1`: each one-shot has a lease of its own.
   */
  oneShotBatch?: number;
}

/** Per-call options of `use()`, `transaction()` and `query()`. */
export interface CallOptions {
  /**
   * The call's timeout in ms: the wait for a connection plus every statement. When it passes,
   * the call rejects with `PostgresTimeoutError`, the running statement is cancelled on the
   * server and the connection destroyed. (The pool's `acquireTimeoutMs` still bounds the wait.)
   */
  timeoutMs?: number;
  /** Aborting it ends the call as `timeoutMs` does, rejecting with `signal.reason`. */
  signal?: AbortSignal;
}

/** Options of `transaction()`. */
export interface TransactionOptions extends CallOptions {
  /** Isolation level of a new transaction (ignored by a nested one: a savepoint). */
  isolation?: "read committed" | "repeatable read" | "serializable";
  /** `BEGIN READ ONLY` (ignored by a nested one: a savepoint). */
  readOnly?: boolean;
}

/** Default of the `oneShotBatch` option (postgres.js's `max_pipeline` default). */
const DEFAULT_ONE_SHOT_BATCH = 100;

/**
 * What a connection is opened with. One server and fixed credentials today; several hosts and a
 * credentials function would be more fields here, read by `PgConnection.open`.
 */
export interface ConnectionSpec {
  /** The URL given (or `DATABASE_URL`); `undefined` when the driver options name the host. */
  url: string | undefined;
  /** postgres.js options (the adapter's own are added by the connection). */
  driver: DriverOptions;
  /** Where it goes, without the password: for messages. */
  target: Target;
  /** `reset: "always"`. */
  cleanSession: boolean;
}

/** The options, checked and resolved. */
export interface ResolvedOptions {
  spec: ConnectionSpec;
  settings: PostgresPoolSettings;
  oneShotBatch: number;
}

type Words<S extends string> = S extends `${infer H} ${infer T}` ? H | Words<T> : S;
/** The space-separated names, checked at compile time to be exactly the keys of `T`. */
const keysOf = <T>() =>
<S extends string[]>(
  ...names: [Words<S[number]>] extends [keyof T] ? [keyof T] extends [Words<S[number]>] ? S
    : never
    : never
): ReadonlySet<string> => new Set(names.join(" ").split(" "));

const OWN_KEYS = keysOf<Omit<PostgresPoolOptions, keyof DriverOptions>>()(
  "url pool reset oneShotBatch",
);
const DRIVER_KEYS = keysOf<DriverOptions & { socket: unknown }>()(
  "host hostname port path database db user username pass password ssl connect_timeout types",
  "prepare onnotice onparameter debug transform connection target_session_attrs fetch_types",
  "publications backoff keep_alive socket",
);
const POOL_KEYS = keysOf<PostgresPoolSettings>()(
  "name min max maxIdle acquireTimeoutMs idleTimeoutMs maxLifetimeMs maxUses validateAfterMs",
  "leakDetectionMs healthCheckIntervalMs hookTimeoutMs breaker order reentrant maxWaiting",
);
const BREAKER_KEYS = keysOf<Exclude<PostgresPoolSettings["breaker"], false | undefined>>()(
  "threshold cooldownMs",
);
const CALL_KEYS = keysOf<CallOptions>()("timeoutMs signal");
const TRANSACTION_KEYS = keysOf<TransactionOptions>()("timeoutMs signal isolation readOnly");
const QUEUE_POOL_KEYS = keysOf<QueuePoolOptions>()(
  "poolSize maxOverflow poolTimeout poolRecycle prePing",
);

/** Checks and resolves the options of `createPostgresPool`. */
export function resolveOptions(options: PostgresPoolOptions): ResolvedOptions {
  const where = "createPostgresPool";
  checkObject(where, "options", options);
  checkKeys(where, "", options, OWN_KEYS, DRIVER_KEYS);
  const { url: givenUrl, pool, reset, oneShotBatch, ...driver } = options;
  if (pool !== undefined) {
    checkObject(where, "pool", pool);
    checkKeys(where, "pool.", pool, POOL_KEYS);
    if (pool.breaker !== undefined && pool.breaker !== false) {
      checkObject(where, "pool.breaker", pool.breaker);
      checkKeys(where, "pool.breaker.", pool.breaker, BREAKER_KEYS);
    }
  }
  if (reset !== undefined && reset !== "always" && reset !== "never") {
    throw new TypeError(`${where}: reset must be "always" or "never", got ${describe(reset)}`);
  }
  const url = givenUrl ?? Deno.env.get("DATABASE_URL");
  if (url === undefined && driver.host === undefined) {
    throw new TypeError(
      `${where}: no database given. Pass { url: 'postgres://user:password@host:5432/db' } ` +
        "or set the DATABASE_URL environment variable.",
    );
  }
  return {
    spec: {
      url,
      driver: { connect_timeout: 10, ...driver },
      target: targetOf(url, driver),
      cleanSession: reset !== "never",
    },
    settings: pool ?? {},
    oneShotBatch: checkOneShotBatch(oneShotBatch),
  };
}

/** Checks a call's options (`transaction: true` also allows isolation and readOnly). */
export function checkCallOptions(where: string, options: unknown, transaction = false): void {
  if (options === undefined) return;
  checkObject(where, "options", options);
  checkKeys(where, "", options as object, transaction ? TRANSACTION_KEYS : CALL_KEYS);
  const { timeoutMs } = options as CallOptions;
  if (timeoutMs !== undefined && (typeof timeoutMs !== "number" || !(timeoutMs >= 0))) {
    throw new TypeError(
      `${where}: timeoutMs must be a number of milliseconds >= 0, got ${describe(timeoutMs)}`,
    );
  }
}

function checkOneShotBatch(value: unknown): number {
  if (value === undefined) return DEFAULT_ONE_SHOT_BATCH;
  if (typeof value === "number" && Number.isInteger(value) && value >= 1) return value;
  throw new TypeError(
    `createPostgresPool: oneShotBatch must be an integer >= 1 (1: no sharing), got ${
      describe(value)
    }`,
  );
}

function checkObject(where: string, name: string, value: unknown): void {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) return;
  throw new TypeError(`${where}: ${name} must be an object, got ${describe(value)}`);
}

/** Refuses a key of `value` that none of the `known` sets holds, naming the nearest one. */
function checkKeys(
  where: string,
  prefix: string,
  value: object,
  ...known: ReadonlySet<string>[]
): void {
  rejectUnknownOptions(where, value, known.flatMap((names) => [...names]), prefix);
}

/** A value for a message: never an object's content (it may hold a password). */
export function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  return `${typeof value} ${JSON.stringify(value)}`;
}

function targetOf(url: string | undefined, driver: DriverOptions): Target {
  let parsed: URL | undefined;
  try {
    if (url !== undefined) parsed = new URL(url);
  } catch {
    throw new TypeError(
      "createPostgresPool: the connection URL is not a valid URL (expected postgres://user:password@host:5432/db)",
    );
  }
  const user = driver.user ?? driver.username ?? decodeURIComponent(parsed?.username ?? "");
  return {
    host: String(driver.host ?? parsed?.hostname ?? "localhost"),
    port: driver.port ?? (parsed?.port || 5432),
    user: user || "(default user)",
    database: driver.database ?? driver.db ??
      (decodeURIComponent(parsed?.pathname.slice(1) ?? "") || user || "(default)"),
  };
}

/**
 * Pool strategy: no pool (SQLAlchemy `NullPool`, psycopg2 without a pool): a fresh connection
 * for every call, closed on release. For scripts, or behind PgBouncer when the app must hold
 * nothing.
 */
export function noPool(): PostgresPoolSettings {
  return { min: 0, maxIdle: 0, validateAfterMs: Infinity };
}

/**
 * Pool strategy: one shared connection (SQLAlchemy `StaticPool`): callers take turns.
 * Reentrant, so a nested `use()`/`transaction()` reuses it instead of waiting for itself.
 */
export function singleConnection(): PostgresPoolSettings {
  return { min: 0, max: 1, reentrant: true };
}

/** SQLAlchemy `QueuePool` arguments, with SQLAlchemy's units (seconds) and defaults. */
export interface QueuePoolOptions {
  /** Connections kept open when idle (`pool_size`). Default 5. */
  poolSize?: number;
  /** Extra connections allowed under load, closed on release (`max_overflow`). Default 10. */
  maxOverflow?: number;
  /** Seconds to wait for a connection before `PoolTimeoutError` (`pool_timeout`). Default 30. */
  poolTimeout?: number;
  /** Seconds after which a connection is replaced (`pool_recycle`); -1 = never. Default -1. */
  poolRecycle?: number;
  /** Ping a connection before every checkout (`pool_pre_ping`). Default false. */
  prePing?: boolean;
}

/**
 * Pool strategy: the classic queue pool (SQLAlchemy `QueuePool`): `poolSize` connections kept,
 * up to `maxOverflow` more under load, `poolTimeout` to wait, `poolRecycle` to replace old ones
 * and `prePing` to check each one on checkout.
 */
export function queuePool(options: QueuePoolOptions = {}): PostgresPoolSettings {
  checkKeys("queuePool", "", options, QUEUE_POOL_KEYS);
  const { poolSize = 5, maxOverflow = 10, poolTimeout = 30, poolRecycle = -1, prePing = false } =
    options;
  return {
    max: poolSize + maxOverflow,
    maxIdle: poolSize,
    acquireTimeoutMs: poolTimeout * 1_000,
    maxLifetimeMs: poolRecycle < 0 ? Infinity : poolRecycle * 1_000,
    validateAfterMs: prePing ? 0 : Infinity,
  };
}

/**
 * Pool strategy: a persistent connection per async context (psycopg2
 * `PersistentConnectionPool`, which keys connections by thread): every call nested in an outer
 * one, in the same async call chain, gets the outer call's connection.
 */
export function perContext(max = 10): PostgresPoolSettings {
  return { max, reentrant: true };
}

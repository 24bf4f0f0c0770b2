/**
 * The pool strategies psycopg2 and SQLAlchemy users know, as ready-made pool settings for
 * `createPostgresPool`'s `pool` option. Each is a plain object: spread it and override.
 *
 * ```ts
 * const pg = createPostgresPool({ url, pool: queuePool({ poolSize: 5, maxOverflow: 10 }) });
 * ```
 *
 * @module
 */
import type { PostgresPoolSettings } from "./pool.ts";

/**
 * No pool (SQLAlchemy `NullPool`, psycopg2 without a pool): a fresh connection for every
 * `use()`, closed on release. For scripts, or behind PgBouncer when the app must hold nothing.
 */
export function noPool(): PostgresPoolSettings {
  return { min: 0, maxIdle: 0, validateAfterMs: Infinity };
}

/**
 * One shared connection (SQLAlchemy `StaticPool`/`SingletonThreadPool`): callers take turns.
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
 * The classic queue pool (SQLAlchemy `QueuePool`): `poolSize` connections kept, up to
 * `maxOverflow` more under load, `poolTimeout` to wait, `poolRecycle` to replace old ones and
 * `prePing` to check each one on checkout.
 */
export function queuePool(options: QueuePoolOptions = {}): PostgresPoolSettings {
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
 * A persistent connection per async context (psycopg2 `PersistentConnectionPool`, which keys
 * connections by thread): every `use()` nested in an outer one, in the same async call chain,
 * gets the outer call's connection; separate tasks get separate connections.
 */
export function perContext(max = 10): PostgresPoolSettings {
  return { max, reentrant: true };
}

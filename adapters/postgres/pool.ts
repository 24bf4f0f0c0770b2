/**
 * {@link createPostgresPool}: PostgreSQL connections (postgres.js) in a {@link Pool}, with
 * `use`, `transaction`, a one-shot `query`, cancellation by `AbortSignal`, and the validate /
 * reset / isFatal hooks that keep broken connections from ever being handed out again.
 *
 * @module
 */
import type postgres from "postgres";
import { Pool } from "../../mod.ts";
import type {
  AcquireOptions,
  CloseOptions,
  PoolOptions,
  PoolStats,
  ResourceFactory,
} from "../../mod.ts";
import { type DriverOptions, PgConnection, type PostgresClient } from "./connection.ts";
import { isConnectionFailure, type Target } from "./errors.ts";

/** The pool's own settings (everything but the factory, which the adapter provides). */
export type PostgresPoolSettings = Omit<PoolOptions<PgConnection>, keyof ResourceFactory<unknown>>;

/** Options of {@link createPostgresPool}: the URL, pool settings and postgres.js options. */
export interface PostgresPoolOptions extends DriverOptions {
  /** Connection URL. Default: the `DATABASE_URL` environment variable. */
  url?: string;
  /**
   * Pool settings. The adapter's defaults differ from the core's in three places:
   * `name: "postgres"`, `reentrant: true` (nested calls join the outer connection and
   * transaction) and `validateAfterMs: 1000` (ping a connection idle for a second or more;
   * `Infinity` turns validation off).
   */
  pool?: PostgresPoolSettings;
}

/** Options of {@link PostgresPool.transaction}. */
export interface TransactionOptions extends AcquireOptions {
  /** Isolation level of a new transaction (ignored when joining an outer one). */
  isolation?: "read committed" | "repeatable read" | "serializable";
  /** `BEGIN READ ONLY` (ignored when joining an outer one). */
  readOnly?: boolean;
}

/** A row as postgres.js returns it. */
export type Row = import("postgres").Row;

/**
 * Pooled PostgreSQL connections. Each pooled resource is one server connection; `use()` lends
 * one to a callback as a postgres.js tagged-template client.
 */
export class PostgresPool implements AsyncDisposable {
  /** The underlying generic pool: for `events()`, `resize()`, `invalidate()`, `acquire()`. */
  readonly pool: Pool<PgConnection>;
  readonly #prepare: boolean;

  /** Prefer {@link createPostgresPool}; this is the same. */
  constructor(options: PostgresPoolOptions = {}) {
    const { url: givenUrl, pool: settings, ...driver } = options;
    const url = givenUrl ?? Deno.env.get("DATABASE_URL");
    if (url === undefined && driver.host === undefined) {
      throw new TypeError(
        "createPostgresPool: no database given. Pass { url: 'postgres://user:password@host:5432/db' } " +
          "or set the DATABASE_URL environment variable.",
      );
    }
    const target = targetOf(url, driver);
    const driverOptions: DriverOptions = { connect_timeout: 10, ...driver };
    this.#prepare = driver.prepare !== false;
    this.pool = new Pool<PgConnection>({
      name: "postgres",
      reentrant: true,
      validateAfterMs: 1_000,
      ...settings,
      create: (signal) => PgConnection.open(url, driverOptions, target, signal),
      destroy: (conn) => conn.close(),
      validate: (conn) => conn.ping(),
      reset: (conn) => conn.reset(),
      isFatal: (error, conn) =>
        conn.closed !== undefined || conn.cancelRequested || isConnectionFailure(error),
    });
  }

  /**
   * Runs `fn` with a client bound to one pooled connection and gives it back afterwards (rolled
   * back if `fn` left a transaction open). Aborting `options.signal` cancels the running
   * statement on the server and rejects with `signal.reason`.
   */
  use<T>(
    fn: (sql: PostgresClient, signal: AbortSignal) => T | Promise<T>,
    options?: AcquireOptions,
  ): Promise<T> {
    return this.#use((conn, signal) => fn(conn.client, signal), options);
  }

  /**
   * Runs `fn` in a transaction: `BEGIN`, then `COMMIT`, or `ROLLBACK` when `fn` throws. Called
   * inside another `transaction()` or `use()` that has a transaction open (same async context,
   * reentrant pool), it joins that transaction instead of starting one.
   */
  transaction<T>(
    fn: (sql: PostgresClient, signal: AbortSignal) => T | Promise<T>,
    options?: TransactionOptions,
  ): Promise<T> {
    const begin = "begin" + (options?.isolation ? ` isolation level ${options.isolation}` : "") +
      (options?.readOnly ? " read only" : "");
    if (
      !/^begin( isolation level (read committed|repeatable read|serializable))?( read only)?$/.test(
        begin,
      )
    ) {
      throw new RangeError(`transaction(): unknown isolation level '${options?.isolation}'`);
    }
    return this.#use(async (conn, signal) => {
      if (conn.inTransaction) return await fn(conn.client, signal);
      await conn.client.unsafe(begin);
      let result: T;
      try {
        result = await fn(conn.client, signal);
      } catch (error) {
        if (!conn.closed && !conn.cancelRequested) await conn.client`rollback`.catch(() => {});
        throw error;
      }
      await conn.client`commit`;
      return result;
    }, options);
  }

  /**
   * One statement on a pooled connection. As a tagged template:
   * `` await pg.query`select * from pedido where id = ${id}` ``; or with text and parameters:
   * `await pg.query("select * from pedido where id = $1", [id], { signal })`.
   */
  query<T extends readonly Row[] = Row[]>(
    strings: TemplateStringsArray,
    ...values: import("postgres").ParameterOrFragment<never>[]
  ): Promise<import("postgres").RowList<T>>;
  /** One statement from text and `$1`-style parameters, with acquire options. */
  query<T extends readonly Row[] = Row[]>(
    text: string,
    params?: readonly unknown[],
    options?: AcquireOptions,
  ): Promise<import("postgres").RowList<T>>;
  query(first: TemplateStringsArray | string, ...rest: unknown[]): Promise<unknown> {
    if (typeof first === "string") {
      const params = (rest[0] ?? []) as postgres.ParameterOrJSON<never>[];
      // Text queries are prepared like tagged ones (postgres.js's unsafe() would not by default).
      return this.use(
        (sql) => sql.unsafe(first, params, { prepare: this.#prepare }),
        rest[1] as AcquireOptions | undefined,
      );
    }
    return this.use((sql) => sql(first, ...(rest as postgres.ParameterOrFragment<never>[])));
  }

  /** A snapshot of the pool: sizes, counters, breaker state, wait times. */
  stats(): PoolStats {
    return this.pool.stats();
  }

  /** Waits for leases to come back (or `timeoutMs`), then closes every connection. */
  close(options?: CloseOptions): Promise<void> {
    return this.pool.close(options);
  }

  /** Same as {@link PostgresPool.close}: for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #use<T>(
    fn: (conn: PgConnection, signal: AbortSignal) => T | Promise<T>,
    options: AcquireOptions | undefined,
  ): Promise<T> {
    if (options?.signal === undefined) return this.pool.use(fn, options);
    return this.pool.use(async (conn, signal) => {
      const cancel = () => conn.cancelRunning();
      signal.addEventListener("abort", cancel, { once: true });
      try {
        return await fn(conn, signal);
      } catch (error) {
        throw signal.aborted ? signal.reason : error;
      } finally {
        signal.removeEventListener("abort", cancel);
      }
    }, options);
  }
}

/**
 * Creates a pool of PostgreSQL connections.
 *
 * @example
 * ```ts
 * import { createPostgresPool } from "@poolkit/pool/postgres";
 *
 * await using pg = createPostgresPool({ url: Deno.env.get("DATABASE_URL"), pool: { max: 5 } });
 * const rows = await pg.query`select now() as now`;
 * await pg.transaction(async (sql) => {
 *   await sql`insert into pedido ${sql({ cliente: "Ana", descripcion: "té", fecha_pedido: new Date() })}`;
 * });
 * ```
 */
export function createPostgresPool(options: PostgresPoolOptions = {}): PostgresPool {
  return new PostgresPool(options);
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
  const user = driver.user ?? driver.username ?? decodeURIComponent(parsed?.username ?? "") ??
    "";
  return {
    host: String(driver.host ?? parsed?.hostname ?? "localhost"),
    port: driver.port ?? (parsed?.port || 5432),
    user: user || "(default user)",
    database: driver.database ?? driver.db ??
      (decodeURIComponent(parsed?.pathname.slice(1) ?? "") || user || "(default)"),
  };
}

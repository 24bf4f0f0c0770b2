/**
 * {@link createPostgresPool}: PostgreSQL connections (postgres.js) in a {@link Pool}, with
 * `use`, `transaction`, a one-shot `query`, cancellation by `AbortSignal`, and the validate /
 * reset / isFatal hooks that keep broken connections from ever being handed out again.
 *
 * @module
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type postgres from "postgres";
import { Pool } from "../../mod.ts";
import type { CloseOptions, Lease, PoolSettings, PoolStats } from "../../mod.ts";
import {
  call,
  type CallContext,
  type CallFrame,
  type CallOptions,
  outerConnection,
} from "./call.ts";
import { type DriverOptions, PgConnection, type PostgresClient } from "./connection.ts";
import { isConnectionFailure, isPermanentConnectError, type Target } from "./errors.ts";
import { DEFAULT_ONE_SHOT_BATCH, mayShare, OneShotBatches, templateMayShare } from "./one_shot.ts";
import { checkSessionReset, type SessionReset } from "./session_reset.ts";
import { beginStatement, runTransaction } from "./transaction.ts";

/** The pool's own settings (everything but the factory, which the adapter provides). */
export type PostgresPoolSettings = PoolSettings<PgConnection>;

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
  /**
   * How each connection is cleaned before the next borrower gets it (see {@link SessionReset}).
   * Default `"always"`: as clean as a new connection. A transaction left open is always rolled
   * back, whatever this says.
   */
  reset?: SessionReset;
  /**
   * How many one-shot `query()` statements (outside `use()`/`transaction()`, without call
   * options) may share one lease, pipelined on its connection; the `reset` then runs once per
   * lease. Only statements that cannot change the session or a transaction share. Default 100;
   * `1`: each one-shot has a lease of its own.
   */
  oneShotBatch?: number;
}

/** Options of {@link PostgresPool.transaction}. */
export interface TransactionOptions extends CallOptions {
  /** Isolation level of a new transaction (ignored by a nested one: a savepoint). */
  isolation?: "read committed" | "repeatable read" | "serializable";
  /** `BEGIN READ ONLY` (ignored by a nested one: a savepoint). */
  readOnly?: boolean;
}

/** A row as postgres.js returns it. */
export type Row = import("postgres").Row;

/** The tagged-template and text forms of a one-shot query, with fixed call options. */
export interface BoundQuery {
  /** One statement as a tagged template, under the bound options. */
  query<T extends readonly Row[] = Row[]>(
    strings: TemplateStringsArray,
    ...values: import("postgres").ParameterOrFragment<never>[]
  ): Promise<import("postgres").RowList<T>>;
}

/**
 * Pooled PostgreSQL connections. Each pooled resource is one server connection; `use()` lends
 * one to a callback as a postgres.js tagged-template client.
 */
export class PostgresPool implements AsyncDisposable {
  /** The underlying generic pool: for `events()`, `resize()`, `invalidate()`. */
  readonly pool: Pool<PgConnection>;
  readonly #prepare: boolean;
  /** The running call per async context (reentrancy), kept here rather than in the core pool. */
  readonly #context: CallContext;
  /** One-shot statements sharing leases; `undefined` with `oneShotBatch: 1`. */
  readonly #batches: OneShotBatches | undefined;

  /** Prefer {@link createPostgresPool}; this is the same. */
  constructor(options: PostgresPoolOptions = {}) {
    const { url: givenUrl, pool: settings, reset: givenReset, oneShotBatch, ...driver } = options;
    const url = givenUrl ?? Deno.env.get("DATABASE_URL");
    if (url === undefined && driver.host === undefined) {
      throw new TypeError(
        "createPostgresPool: no database given. Pass { url: 'postgres://user:password@host:5432/db' } " +
          "or set the DATABASE_URL environment variable.",
      );
    }
    const reset = checkSessionReset(givenReset);
    const depth = checkOneShotBatch(oneShotBatch);
    const target = targetOf(url, driver);
    const driverOptions: DriverOptions = { connect_timeout: 10, ...driver };
    this.#prepare = driver.prepare !== false;
    this.#context = (settings?.reentrant ?? true) ? new AsyncLocalStorage<CallFrame>() : undefined;
    this.pool = new Pool<PgConnection>({
      name: "postgres",
      validateAfterMs: 1_000,
      ...settings,
      reentrant: false, // the adapter keeps the nesting context itself (see call.ts)
      create: (signal) => PgConnection.open(url, driverOptions, target, reset, signal),
      destroy: (conn) => conn.close(),
      validate: (conn, signal) => conn.ping(signal),
      reset: (conn) => conn.reset(),
      isFatal: (error, conn) =>
        conn.unusable !== undefined || conn.cancelRequested || isConnectionFailure(error),
      isPermanent: isPermanentConnectError,
    });
    this.#batches = depth === 1 ? undefined : new OneShotBatches(
      {
        acquire: () => this.acquire(),
        isFatal: (error, conn) =>
          conn.unusable !== undefined || conn.cancelRequested || isConnectionFailure(error),
      },
      depth,
      this.pool.stats().max,
    );
  }

  /**
   * Runs `fn` with a client bound to one pooled connection and gives it back afterwards, rolled
   * back if `fn` left a transaction open and cleaned per the `reset` option. Aborting
   * `options.signal` (or passing `options.deadlineMs`) rejects with its reason at once, cancels
   * the running statement on the server and destroys the connection.
   */
  use<T>(
    fn: (sql: PostgresClient, signal: AbortSignal) => T | Promise<T>,
    options?: CallOptions,
  ): Promise<T> {
    return call(this.pool, this.#context, (conn, signal) => fn(conn.client, signal), options);
  }

  /**
   * Borrows a connection for as long as you hold the lease (`await using lease = await
   * pg.acquire()`; `lease.resource.client` is its client). Never one whose socket is known to be
   * closed. Signals and deadlines bound only the wait here; prefer {@link PostgresPool.use}.
   */
  async acquire(options?: CallOptions): Promise<Lease<PgConnection>> {
    while (true) {
      const lease = await this.pool.acquire(options);
      if (!lease.resource.unusable) return lease;
      await lease.destroy("connection unusable");
    }
  }

  /**
   * Runs `fn` in a transaction: `BEGIN`, then `COMMIT`, or `ROLLBACK` when `fn` throws. It
   * resolves only when the server committed: if a statement failed and `fn` went on, it rejects
   * with `TransactionRolledBackError` (the server's error as `cause`). Called inside another
   * transaction (same async context, reentrant pool) it runs in a `SAVEPOINT`: if it fails, only
   * its own work is rolled back and the outer transaction can go on.
   */
  transaction<T>(
    fn: (sql: PostgresClient, signal: AbortSignal) => T | Promise<T>,
    options?: TransactionOptions,
  ): Promise<T> {
    const begin = beginStatement(options);
    return call(
      this.pool,
      this.#context,
      (conn, signal) => runTransaction(conn, begin, fn, signal),
      options,
    );
  }

  /**
   * One statement on a pooled connection. As a tagged template:
   * `` await pg.query`select * from pedido where id = ${id}` ``; or with text and parameters:
   * `await pg.query("select * from pedido where id = $1", [id], { deadlineMs: 500 })`.
   */
  query<T extends readonly Row[] = Row[]>(
    strings: TemplateStringsArray,
    ...values: import("postgres").ParameterOrFragment<never>[]
  ): Promise<import("postgres").RowList<T>>;
  /** One statement from text and `$1`-style parameters, with call options. */
  query<T extends readonly Row[] = Row[]>(
    text: string,
    params?: readonly unknown[],
    options?: CallOptions,
  ): Promise<import("postgres").RowList<T>>;
  query(first: TemplateStringsArray | string, ...rest: unknown[]): Promise<unknown> {
    if (typeof first === "string") {
      try {
        return this.#textQuery(first, rest[0], rest[1]);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    const values = rest as postgres.ParameterOrFragment<never>[];
    if (this.#shares() && templateMayShare(first, values)) {
      return this.#batches!.run((sql) => sql(first, ...values));
    }
    return this.use((sql) => sql(first, ...values));
  }

  /**
   * The tagged-template query with call options:
   * `` await pg.with({ deadlineMs: 500 }).query`select pg_sleep(1)` ``.
   */
  with(options: CallOptions): BoundQuery {
    checkCallOptions("with(options)", options);
    return {
      query: (strings, ...values) =>
        this.use((sql) => sql(strings, ...values), options) as Promise<never>,
    };
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

  #textQuery(text: string, params: unknown, options: unknown): Promise<unknown> {
    if (params !== undefined && !Array.isArray(params)) {
      throw new TypeError(
        `query(text, params, options): params must be an array of the $1, $2, ... values, got ${
          describeValue(params)
        }. Call query(text, [value1, value2]) or, with options and no parameters, ` +
          "query(text, [], { signal })",
      );
    }
    checkCallOptions("query(text, params, options)", options);
    const values = (params ?? []) as postgres.ParameterOrJSON<never>[];
    // Text queries are prepared like tagged ones (postgres.js's unsafe() would not by default).
    const statement = (sql: PostgresClient) => sql.unsafe(text, values, { prepare: this.#prepare });
    if (options === undefined && this.#shares() && mayShare(text)) {
      return this.#batches!.run(statement);
    }
    return this.use(statement, options as CallOptions | undefined);
  }

  /** Whether a one-shot may join a batch: batching is on and no call runs in this context. */
  #shares(): boolean {
    return this.#batches !== undefined && outerConnection(this.#context) === undefined;
  }
}

function checkOneShotBatch(value: unknown): number {
  if (value === undefined) return DEFAULT_ONE_SHOT_BATCH;
  if (typeof value === "number" && Number.isInteger(value) && value >= 1) return value;
  throw new TypeError(
    `createPostgresPool: oneShotBatch must be an integer >= 1 (1: no sharing), got ${
      describeValue(value)
    }`,
  );
}

function checkCallOptions(where: string, options: unknown): void {
  if (options === undefined) return;
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new TypeError(
      `${where}: options must be an object such as { signal, deadlineMs, timeoutMs }, got ${
        describeValue(options)
      }`,
    );
  }
}

function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  return `${typeof value} ${JSON.stringify(value)}`;
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

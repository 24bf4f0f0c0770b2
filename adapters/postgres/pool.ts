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
import type { CloseOptions, EventsOptions, Lease } from "../../mod.ts";
import {
  beginStatement,
  call,
  type CallFrame,
  type CallHost,
  outerConnection,
  runTransaction,
} from "./call.ts";
import type { PgConnection, PooledConnection, PostgresClient } from "./connection.ts";
import {
  isConnectionFailure,
  isPermanentConnectError,
  PostgresConnectionError,
  READ_ONLY_SQL_TRANSACTION,
} from "./errors.ts";
import { HostEventHub, type PostgresPoolEvent, type PostgresPoolStats } from "./host_events.ts";
import { HostList } from "./hosts.ts";
import { mayShare, OneShotBatches, templateMayShare } from "./one_shot.ts";
import {
  type CallOptions,
  checkCallOptions,
  describe,
  type PostgresPoolOptions,
  resolveOptions,
  type TransactionOptions,
} from "./options.ts";

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
  readonly pool: Pool<PooledConnection>;
  readonly #pool: Pool<PgConnection>;
  readonly #prepare: boolean;
  /** What calls need: the nesting context, the pool's acquire and isFatal. */
  readonly #host: CallHost;
  /** One-shot statements sharing leases; `undefined` with `oneShotBatch: 1`. */
  readonly #batches: OneShotBatches | undefined;
  /** The servers, and the pool's `create`. */
  readonly #hosts: HostList;
  readonly #hostEvents = new HostEventHub();
  /** `read-write` and `primary` pools: a one-shot refused as read-only (25006) runs again. */
  readonly #retriesRefusedWrites: boolean;

  /** Prefer {@link createPostgresPool}; this is the same. */
  constructor(options: PostgresPoolOptions = {}) {
    const { spec, hosts, settings, oneShotBatch } = resolveOptions(options);
    this.#retriesRefusedWrites = hosts.targetSessionAttrs === "read-write" ||
      hosts.targetSessionAttrs === "primary";
    this.#hosts = new HostList(
      spec,
      hosts,
      this.#hostEvents.emit,
      () => this.#pool.invalidate(),
    );
    const isFatal = (error: unknown, conn: PgConnection) =>
      conn.unusable !== undefined || isConnectionFailure(error);
    this.#prepare = spec.driver.prepare !== false;
    this.#pool = new Pool<PgConnection>({
      name: "postgres",
      validateAfterMs: 1_000,
      ...settings,
      reentrant: false, // the adapter keeps the nesting context itself (see call.ts)
      create: (signal) => this.#hosts.open(signal),
      destroy: (conn) => {
        this.#hosts.forget(conn);
        return conn.close();
      },
      validate: (conn, signal) => conn.ping(signal),
      reset: (conn) => conn.reset(),
      isFatal,
      isPermanent: isPermanentConnectError,
    });
    this.pool = this.#pool as unknown as Pool<PooledConnection>;
    this.#host = {
      context: (settings.reentrant ?? true) ? new AsyncLocalStorage<CallFrame>() : undefined,
      acquire: (options) => this.#acquireLive(options),
      isFatal,
    };
    this.#batches = oneShotBatch === 1
      ? undefined
      : new OneShotBatches(this.#host, oneShotBatch, this.#pool.stats().max);
  }

  /**
   * Runs `fn` with a client bound to one pooled connection and gives it back afterwards, rolled
   * back if `fn` left a transaction open and cleaned per the `reset` option. When
   * `options.timeoutMs` passes or `options.signal` aborts, the call rejects at once, the running
   * statement is cancelled on the server and the connection destroyed.
   */
  use<T>(
    fn: (sql: PostgresClient, signal: AbortSignal) => T | Promise<T>,
    options?: CallOptions,
  ): Promise<T> {
    try {
      checkCallOptions("use(fn, options)", options);
    } catch (error) {
      return Promise.reject(error);
    }
    return call(this.#host, (conn, signal) => fn(conn.client, signal), options);
  }

  /**
   * Borrows a connection for as long as you hold the lease (`await using lease = await
   * pg.acquire()`; `lease.resource.client` is its client). Never one known to be unusable.
   * `timeoutMs` and `signal` bound only the wait here; prefer {@link PostgresPool.use}.
   */
  async acquire(options?: CallOptions): Promise<Lease<PooledConnection>> {
    checkCallOptions("acquire(options)", options);
    return await this.#acquireLive(options);
  }

  async #acquireLive(options?: CallOptions): Promise<Lease<PgConnection>> {
    while (true) {
      const lease = await this.#pool.acquire(options);
      if (!lease.resource.unusable) return lease;
      void lease.destroy("connection unusable");
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
    let begin: string;
    try {
      checkCallOptions("transaction(fn, options)", options, true);
      begin = beginStatement(options);
    } catch (error) {
      return Promise.reject(error);
    }
    return call(this.#host, (conn, signal) => runTransaction(conn, begin, fn, signal), options);
  }

  /**
   * One statement on a pooled connection. As a tagged template:
   * `` await pg.query`select * from pedido where id = ${id}` ``; or with text and parameters:
   * `await pg.query("select * from pedido where id = $1", [id], { timeoutMs: 500 })`.
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
      return this.#oneShot(() => this.#batches!.run((sql) => sql(first, ...values)));
    }
    return this.#oneShot(() => this.use((sql) => sql(first, ...values)));
  }

  /**
   * Runs a one-shot statement; in `read-write` and `primary` pools, once more on another
   * connection when the server refused it as read-only (the connection was retired): it ran in
   * no transaction, so nothing was written. Not inside another call, whose transaction it may be
   * part of.
   */
  #oneShot<T>(run: () => Promise<T>): Promise<T> {
    if (!this.#retriesRefusedWrites || outerConnection(this.#host.context) !== undefined) {
      return run();
    }
    return run().catch((error) => {
      const refused = error instanceof PostgresConnectionError &&
        error.code === READ_ONLY_SQL_TRANSACTION;
      if (!refused) throw error;
      return run();
    });
  }

  /**
   * The tagged-template query with call options:
   * `` await pg.with({ timeoutMs: 500 }).query`select pg_sleep(1)` ``.
   */
  with(options: CallOptions): BoundQuery {
    checkCallOptions("with(options)", options);
    return {
      query: (strings, ...values) =>
        this.use((sql) => sql(strings, ...values), options) as Promise<never>,
    };
  }

  /**
   * A snapshot of the pool: sizes, counters, breaker state, wait times, and each host with its
   * role as last seen, whether it is up and its connections.
   */
  stats(): PostgresPoolStats {
    return { ...this.#pool.stats(), hosts: this.#hosts.stats() };
  }

  /**
   * The pool's events (as `pg.pool.events()`) and the hosts': `host-down`, `host-up` and
   * `role-changed`, each with the host as `host:port`. Ends when the pool closes, the signal
   * aborts, or the loop breaks.
   */
  events(options?: EventsOptions): AsyncIterableIterator<PostgresPoolEvent> {
    const core = this.#pool.events(options);
    return this.#hostEvents.merged(core, options?.bufferSize ?? 1024, options?.signal);
  }

  /** Waits for leases to come back (or `timeoutMs`), then closes every connection. */
  async close(options?: CloseOptions): Promise<void> {
    try {
      await this.#pool.close(options);
    } finally {
      await this.#hosts.close();
      this.#hostEvents.close();
    }
  }

  /** Same as {@link PostgresPool.close}: for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #textQuery(text: string, params: unknown, options: unknown): Promise<unknown> {
    if (params !== undefined && !Array.isArray(params)) {
      throw new TypeError(
        `query(text, params, options): params must be an array of the $1, $2, ... values, got ${
          describe(params)
        }. Call query(text, [value1, value2]) or, with options and no parameters, ` +
          "query(text, [], { signal })",
      );
    }
    checkCallOptions("query(text, params, options)", options);
    const values = (params ?? []) as postgres.ParameterOrJSON<never>[];
    // Text queries are prepared like tagged ones (postgres.js's unsafe() would not by default).
    const statement = (sql: PostgresClient) => sql.unsafe(text, values, { prepare: this.#prepare });
    if (options === undefined && this.#shares() && mayShare(text)) {
      return this.#oneShot(() => this.#batches!.run(statement));
    }
    if (options !== undefined) return this.use(statement, options as CallOptions);
    return this.#oneShot(() => this.use(statement));
  }

  /** Whether a one-shot may join a batch: batching is on and no call runs in this context. */
  #shares(): boolean {
    return this.#batches !== undefined && outerConnection(this.#host.context) === undefined;
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

/**
 * One pooled PostgreSQL connection: a postgres.js instance with `max: 1`, so that every query
 * made through its {@link PgConnection.client} runs on the same server session.
 *
 * A connection is in one of the {@link ConnectionState}s and changes state only through
 * `#move()`: `open` is the one state in which it may be lent; every other state names why it
 * must not be, and the pool destroys it (closing its socket) when it comes back.
 *
 * Between two borrowers it is reset on one path, psycopg_pool's `_reset_connection`: roll back
 * what the transaction status byte (read from ReadyForQuery, see wire.ts) says is open, then
 * clean the session ({@link RESET_SESSION_SQL}). Both go out in one message when the lease
 * ends, without waiting for the answer: the server runs them at once, and the next borrower's
 * first statement queues behind them.
 *
 * ## postgres.js internals the adapter relies on (checked against postgres.js 3.4.9)
 * Everything else goes through postgres.js's public API. These five are not public:
 * - a query's `resolve` and `reject` (wrapped in `#track`): to know which statements are still
 *   running when a lease ends, and a transaction's first error, without a closure per statement.
 * - a query's `executed` flag (`reset`): a statement never sent is dropped, one sent is
 *   cancelled and its connection destroyed.
 * - a query's `canceller` (`abandon`): called directly, so that a cancel request that
 *   fails is not an unhandled rejection (`query.cancel()` would make one).
 * - the shape postgres.js passes to the `socket` option (`host`, `port`, `path`, `ssl`,
 *   `connect_timeout`; wire.ts): to open the socket ourselves and read the status byte.
 * - that a failed array-type fetch after login (`fetch_types`) rejects the opening's first
 *   statement with the same error object (type_fetch.ts).
 *
 * @module
 */
import postgres from "postgres";
import {
  closedError,
  connectError,
  connectionLostError,
  discardedError,
  endedByApplicationError,
  isDriverClosed,
  openTimedOutError,
  PostgresConnectionError,
  READ_ONLY_SQL_TRANSACTION,
  readOnlyNowError,
  resetFailedError,
} from "./errors.ts";
import type { ConnectionSpec } from "./options.ts";
import { ownOpeningFailure } from "./type_fetch.ts";
import { ConnectionSockets, type SocketFactory, type TxStatus } from "./wire.ts";

/** The tagged-template client bound to one connection: postgres.js's `Sql`. */
export type PostgresClient = import("postgres").Sql<Record<string, unknown>>;

/** Driver options the adapter passes on (the pool owns sizing, lifetimes and `onclose`). */
export type DriverOptions = Omit<
  import("postgres").Options<Record<string, import("postgres").PostgresType>>,
  | "max"
  | "idle_timeout"
  | "max_lifetime"
  | "onclose"
  | "timeout"
  | "no_prepare"
  | "target_session_attrs"
>;

/** A pooled connection as a lease shows it. */
export interface PooledConnection {
  /** Sequence number within the process, for messages. */
  readonly id: number;
  /** The server process id serving it (behind PgBouncer: PgBouncer's own). */
  readonly pid: number;
  /** The host it is connected to, as `host:port`. */
  readonly host: string;
  /** Its tagged-template client: every statement made with it runs on this connection. */
  readonly client: PostgresClient;
}

/**
 * `open`: may be lent. `abandoned`: a statement on it was cancelled or given up. `ended`: the
 * application called `sql.end()`. `closed`: the socket closed (server or network). `broken`: the
 * cleaning after a lease failed. `retired`: its server's role is no longer the one asked for
 * (see {@link ConnectionWatch}). Only `open` is ever lent.
 */
export type ConnectionState = "open" | "abandoned" | "ended" | "closed" | "broken" | "retired";

/**
 * What the server said about itself: in recovery (a standby) and read-only, or `undefined` when
 * not known (PostgreSQL before 14 and PgBouncer do not report them, and the pool did not ask).
 */
export interface ServerState {
  standby: boolean | undefined;
  readOnly: boolean | undefined;
}

/** How the host list follows a connection after it opened (see hosts.ts). */
export interface ConnectionWatch {
  /**
   * Why it must be retired now (its server's role changed), or `undefined`; left out when no
   * role is asked for (`targetSessionAttrs: "any"`).
   */
  readonly retire: ((conn: PgConnection) => PostgresConnectionError | undefined) | undefined;
  /** The server reported a change of `in_hot_standby` or `default_transaction_read_only`. */
  changed(conn: PgConnection): void;
  /** Whether the pool wants writable servers: a `25006` then retires the connection. */
  readonly writes: boolean;
}

/** The statement that proves a new connection; with `role`, it also asks for the server's. */
const OPEN_SQL = "select pg_backend_pid() as pid";
const OPEN_WITH_ROLE_SQL = "select pg_backend_pid() as pid, pg_is_in_recovery() as standby, " +
  "current_setting('transaction_read_only') = 'on' as read_only";

/**
 * Cleans a session (PgBouncer's `DISCARD ALL` minus `DEALLOCATE ALL`, which would drop
 * postgres.js's own prepared statements: only those made with SQL `PREPARE`, also inside a
 * function, are deallocated). In a transaction block, so that when any part fails the server
 * refuses everything queued behind it until the connection is destroyed.
 */
export const RESET_SESSION_SQL =
  "begin; close all; set session authorization default; reset all; unlisten *; discard temp; " +
  "discard sequences; select pg_catalog.pg_advisory_unlock_all(); do $$ declare r record; " +
  "begin for r in select name from pg_catalog.pg_prepared_statements where from_sql loop " +
  "execute 'deallocate ' || quote_ident(r.name); end loop; end $$; commit";

/** setTimeout fires at once past this (a 32-bit delay). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** How long a given-up connection waits for its cancel requests before its socket is cut. */
const CANCEL_GRACE_MS = 500;

/** The postgres.js query internals we rely on (see the module comment). */
interface QueryInternals {
  executed: boolean;
  resolve: (result: unknown) => void;
  reject: (error: unknown) => void;
  canceller: ((query: unknown) => Promise<void>) | null;
}

/** A query while {@link PgConnection} tracks it: its own settle functions, and whose it is. */
interface TrackedQuery extends QueryInternals {
  poolkitConnection: PgConnection;
  poolkitResolve: (result: unknown) => void;
  poolkitReject: (error: unknown) => void;
}

let nextId = 1;

/** One server connection, as the pool holds it. */
export class PgConnection implements PooledConnection {
  /** Sequence number, for messages. */
  readonly id: number = nextId++;
  /** The server process id serving this connection (PgBouncer: its own id). */
  pid = 0;
  /** The host it is connected to, as `host:port`. */
  host: string;
  /** The server's role as last reported on this connection. */
  readonly server: ServerState = { standby: undefined, readOnly: undefined };
  /** Set by the host list once the connection is open. */
  watch: ConnectionWatch | undefined;
  /** The host list's count of its host's role changes when this connection was last checked. */
  roleEpoch = 0;
  /** The client handed to callbacks: the driver, with statement tracking. */
  readonly client: PostgresClient;
  /** How many `transaction()` calls are running on it (savepoints nest inside). */
  transactionDepth = 0;
  /** The first statement error since the innermost `transaction()` began. */
  transactionError: unknown;
  #state: ConnectionState = "open";
  #defaultReadOnly: boolean | undefined;
  /** Why it left `open`. */
  #why: PostgresConnectionError | undefined;
  readonly #sql: PostgresClient;
  readonly #sockets: ConnectionSockets;
  readonly #running = new Set<QueryInternals>();
  /** Cancel requests sent, settled when the server closed their socket (or it timed out). */
  readonly #cancels: Promise<void>[] = [];
  readonly #cleanSession: boolean;
  /**
   * Whether the adapter's own SQL may be sent without waiting, ahead of the borrower's: not with
   * `prepare: false`, PgBouncer's setting (PgBouncer 1.18 in transaction mode closed the
   * connection when a simple-protocol message was followed by an extended-protocol statement in
   * the same write).
   */
  readonly pipelines: boolean;

  private constructor(spec: ConnectionSpec) {
    const { url, driver, cleanSession, target } = spec;
    this.host = `${target.host}:${target.port}`;
    this.#cleanSession = cleanSession;
    this.pipelines = driver.prepare !== false;
    this.#sockets = new ConnectionSockets((driver as { socket?: SocketFactory }).socket);
    const userOnParameter = driver.onparameter;
    const options = {
      onnotice: () => {},
      ...driver,
      onparameter: (key: string, value: string) => {
        this.#parameter(key, value);
        userOnParameter?.(key, value);
      },
      socket: this.#sockets.factory,
      max: 1,
      idle_timeout: 0, // the pool evicts idle connections, the driver must not
      max_lifetime: 0, // the pool enforces lifetimes
      onclose: () => this.#move("closed", closedError(this.id, this.pid)),
    };
    this.#sql = (url === undefined ? postgres(options) : postgres(url, options)) as PostgresClient;
    this.client = this.#trackingClient(this.#sql);
  }

  /**
   * Opens a connection and proves it with a round trip, so failures surface here. With `role`,
   * the same statement asks for the server's role (no round trip of its own).
   *
   * The whole opening (login, postgres.js's type fetch, the first statement) is bounded by
   * `connect_timeout`: postgres.js bounds only the login, and a PgBouncer whose server is down
   * accepts the login and then holds the first statement (up to its `query_wait_timeout`).
   * When that passes, or `signal` aborts, the opening is cut at once and rejects.
   */
  static async open(
    spec: ConnectionSpec,
    signal: AbortSignal,
    role = false,
  ): Promise<PgConnection> {
    signal.throwIfAborted();
    const conn = new PgConnection(spec);
    const limitMs = conn.#sql.options.connect_timeout * 1_000;
    const { promise: cut, reject: cutWith } = Promise.withResolvers<never>();
    const onAbort = () => cutWith(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    // As in postgres.js, 0 (or none) means no bound.
    const timer = limitMs > 0
      ? setTimeout(
        () => cutWith(openTimedOutError(spec.target, limitMs)),
        Math.min(limitMs, MAX_TIMER_MS),
      )
      : undefined;
    const first = conn.#sql.unsafe(role ? OPEN_WITH_ROLE_SQL : OPEN_SQL);
    first.catch(ownOpeningFailure); // the driver's type fetch may fail unawaited with it
    try {
      const [row] = await Promise.race([first, cut]);
      conn.pid = Number(row.pid);
      if (role) {
        conn.server.standby = row.standby === true;
        conn.server.readOnly = row.read_only === true;
      }
    } catch (error) {
      // Ending rejects what the driver still runs (the first statement, its type fetch, both
      // with one error: owned above). The socket is cut too, for a host that does not answer.
      await conn.#sql.end({ timeout: 0 }).catch(() => {});
      conn.#sockets.destroy();
      if (signal.aborted) throw signal.reason;
      throw error instanceof PostgresConnectionError ? error : connectError(error, spec.target);
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
    }
    if (signal.aborted) {
      await conn.close();
      throw signal.reason;
    }
    conn.#sockets.watcher.forget();
    return conn;
  }

  /** Its state (see {@link ConnectionState}). */
  get state(): ConnectionState {
    return this.#state;
  }

  /**
   * Why it must not be lent (it left `open`, or its server's role changed: then it is retired
   * now), or `undefined` when it may be.
   */
  get unusable(): PostgresConnectionError | undefined {
    const retire = this.watch?.retire;
    if (this.#why === undefined && retire !== undefined) {
      const why = retire(this);
      if (why !== undefined) this.#move("retired", why);
    }
    return this.#why;
  }

  /** A ParameterStatus from the server (at startup, and whenever a reported setting changes). */
  #parameter(key: string, value: string): void {
    if (key === "in_hot_standby") this.server.standby = value === "on";
    else if (key === "default_transaction_read_only") this.#defaultReadOnly = value === "on";
    else return;
    this.server.readOnly = this.server.standby === true || this.#defaultReadOnly === true;
    this.watch?.changed(this);
  }

  /** The server's transaction status after the last statement (`unknown` over TLS). */
  get txStatus(): TxStatus {
    return this.#sockets.watcher.status;
  }

  /** Whether a transaction is open on it (or failed and not yet rolled back). */
  get inTransaction(): boolean {
    const status = this.txStatus;
    return status === "open" || status === "failed" ||
      (status === "unknown" && this.transactionDepth > 0);
  }

  /**
   * The driver without statement tracking, for one-shot statements that share a lease (see
   * one_shot.ts): their batch counts what is in flight, and such a statement is never aborted
   * on its own nor changes the session. Pass their errors through {@link PgConnection.explain}.
   */
  get untracked(): PostgresClient {
    if (this.#why !== undefined) throw this.#why;
    return this.#sql;
  }

  /** Runs SQL of the adapter's own (not counted as the borrower's). */
  run(text: string): Promise<import("postgres").RowList<import("postgres").Row[]>> {
    return this.#sql.unsafe(text).catch((error) => {
      throw this.explain(error);
    });
  }

  /** Sends SQL of the adapter's own without waiting; its failure shows in the next statement. */
  send(text: string): void {
    this.#sql.unsafe(text).catch(() => {});
  }

  /**
   * Whether the server still answers (`SELECT 1`). The pool bounds how long it waits; on abort
   * the connection is given up, so that closing it does not wait for an unreachable server.
   */
  async ping(signal?: AbortSignal): Promise<boolean> {
    if (this.#why !== undefined) return false;
    const giveUp = () => this.abandon("it did not answer a ping in time");
    signal?.addEventListener("abort", giveUp, { once: true });
    try {
      const ok = await this.client`select 1`.then(() => true, () => false);
      if (ok) this.#sockets.watcher.forget();
      return ok;
    } finally {
      signal?.removeEventListener("abort", giveUp);
    }
  }

  /**
   * Readies it for the next borrower, as the lease ends: rolls back what the server says is
   * open and (unless `reset: "never"`) cleans the session, in one message sent now and not
   * waited for (see the module comment) unless it does not {@link PgConnection.pipelines}.
   * Nothing to do costs nothing.
   * Throws, so that the pool destroys it, when it is not `open` or a statement sent on it is
   * still running.
   */
  reset(): Promise<void> | void {
    if (this.unusable !== undefined) throw this.#why;
    for (const query of this.#running) {
      if (query.executed) {
        this.abandon("it was released while a statement was still running");
        throw this.#why;
      }
    }
    this.#running.clear(); // what is left was never sent (fragments, unawaited queries)
    const watcher = this.#sockets.watcher;
    const watched = this.txStatus !== "unknown";
    // Unwatched (TLS), statements may run unseen (postgres.js's sql.begin scope): assume some did.
    const ran = !watched || watcher.readies > 0;
    const rollback = this.inTransaction || !watched && ran;
    const clean = this.#cleanSession && ran;
    this.transactionDepth = 0;
    this.transactionError = undefined;
    if (!rollback && !clean) return watcher.forget();
    watcher.forget(1); // the cleaning's own ReadyForQuery is not the next borrower's
    if (watched) watcher.status = "idle"; // what the cleaning leaves, or it breaks the connection
    const text = (rollback ? "rollback; " : "") + (clean ? RESET_SESSION_SQL : "");
    const cleaning = this.#sql.unsafe(text);
    // Noted as the driver rejects it, before it handles what was pipelined behind.
    const internals = cleaning as unknown as QueryInternals, reject = internals.reject;
    internals.reject = (error) => {
      this.#move("broken", resetFailedError(this.id, error));
      this.#sockets.destroy(); // nothing may run on an unclean session, nor stay open on it
      reject(error);
    };
    if (!this.pipelines) return cleaning.then(() => watcher.forget());
    cleaning.catch(() => {});
  }

  /**
   * Gives up on it: cancels its running statements on the server (each cancel request goes out
   * on a socket of its own) and marks it for destruction. Nothing here waits for the server.
   */
  abandon(why = "a statement on it was cancelled"): void {
    this.#move("abandoned", discardedError(this.id, why));
    this.#sockets.cancelling = true;
    for (const query of this.#running) {
      const cancel = query.canceller;
      if (!query.executed || cancel === null) continue; // never sent: nothing to cancel
      query.canceller = null;
      this.#cancels.push(Promise.resolve(cancel(query)).catch(() => {}));
    }
  }

  /**
   * Closes the connection: an `open` one gracefully (a second for statements to finish); any
   * other by cutting its socket, once its cancel requests are delivered or after
   * {@link CANCEL_GRACE_MS} (behind PgBouncer a cancel for a client already gone is dropped;
   * behind a dead network it never arrives).
   */
  async close(): Promise<void> {
    if (this.#state === "open") return await this.#sql.end({ timeout: 1 });
    if (this.#cancels.length > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const grace = new Promise<void>((resolve) => timer = setTimeout(resolve, CANCEL_GRACE_MS));
      await Promise.race([Promise.all(this.#cancels), grace]);
      clearTimeout(timer);
    }
    this.#sockets.destroy();
    await this.#sql.end({ timeout: 0 });
  }

  /** The one place the state changes: the first reason to leave `open` is the one kept. */
  #move(state: ConnectionState, why: PostgresConnectionError): void {
    if (this.#state !== "open") return;
    this.#state = state;
    this.#why = why;
    // Left alone, postgres.js would reconnect on the next query and run it outside the
    // transaction it belonged to. Ending it makes every later query fail instead.
    if (state === "closed") this.#sql.end({ timeout: 0 }).catch(() => {});
  }

  /**
   * The client for callbacks: every statement is tracked (see `#track`), and `sql.end()` marks
   * the connection `ended` before postgres.js closes it, so that it is never lent again.
   */
  #trackingClient(sql: PostgresClient): PostgresClient {
    const track = (query: unknown): unknown => {
      if (
        query instanceof Promise && typeof (query as { cancel?: unknown }).cancel === "function"
      ) {
        this.#track(query as unknown as QueryInternals);
      }
      return query;
    };
    type Variadic = (...args: unknown[]) => unknown;
    const wrapped: Record<PropertyKey, Variadic> = {
      unsafe: (...args) => track((sql.unsafe as Variadic)(...args)),
      file: (...args) => track((sql.file as Variadic)(...args)),
      end: (...args) => {
        this.#move("ended", endedByApplicationError(this.id));
        return (sql.end as Variadic)(...args);
      },
    };
    return new Proxy(sql, {
      apply: (target, self, args) => track(Reflect.apply(target, self, args)),
      get: (target, key, receiver) => wrapped[key] ?? Reflect.get(target, key, receiver),
    });
  }

  /**
   * Notes a statement as running until it settles. The driver calls `query.resolve(...)` and
   * `query.reject(...)` as methods, so two shared functions replace them (no closures per
   * statement); the originals and this connection ride on the query object.
   */
  #track(query: QueryInternals): void {
    if (this.#why !== undefined) throw this.#why;
    const tracked = query as TrackedQuery;
    tracked.poolkitConnection = this;
    tracked.poolkitResolve = query.resolve;
    tracked.poolkitReject = query.reject;
    this.#running.add(query);
    query.resolve = PgConnection.#settledWith;
    query.reject = PgConnection.#failedWith;
  }

  static #settledWith(this: TrackedQuery, result: unknown): void {
    this.poolkitConnection.#running.delete(this);
    this.poolkitResolve(result);
  }

  static #failedWith(this: TrackedQuery, error: unknown): void {
    const conn = this.poolkitConnection;
    conn.#running.delete(this);
    conn.transactionError ??= error;
    this.poolkitReject(conn.explain(error));
  }

  /**
   * A driver error as the adapter reports it: once the connection left `open`, the reason it
   * did (closed by the server, ended by the application, a failed cleaning); a socket failure
   * noticed first by a statement, one clear {@link PostgresConnectionError}. A statement error
   * the server reported is passed on as it is.
   */
  explain(error: unknown): unknown {
    if (
      this.watch?.writes && this.#why === undefined &&
      (error as { code?: unknown } | null)?.code === READ_ONLY_SQL_TRANSACTION
    ) {
      const why = readOnlyNowError(this.id, this.host, error);
      this.server.readOnly = true;
      this.#move("retired", why);
      this.watch.changed(this);
      return why;
    }
    const why = this.#why;
    if (why !== undefined && (this.#state === "broken" || isDriverClosed(error))) {
      return new PostgresConnectionError(why.message, why.code, { cause: error });
    }
    if (!isDriverClosed(error)) return error;
    return connectionLostError(this.id, this.pid, error);
  }
}

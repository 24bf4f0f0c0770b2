/**
 * One pooled PostgreSQL connection: a postgres.js instance with `max: 1`, so that every query
 * made through its {@link PgConnection.client} runs on the same server session.
 *
 * It knows what the pool needs without asking the server: the transaction status the server
 * sends with every ReadyForQuery (read from the socket, see wire.ts), whether the socket closed,
 * whether anything ran since the last reset, and which statements are running, so that an abort
 * can cancel them on the server.
 *
 * postgres.js 3.4.9 does not expose these, so this file relies on three of its query internals:
 * a query's `resolve`/`reject` (wrapped to observe results), its `executed` flag and its
 * `canceller` (to cancel without an unhandled rejection).
 *
 * @module
 */
import postgres from "postgres";
import {
  connectError,
  connectionLostError,
  discardedError,
  isDriverClosed,
  PostgresConnectionError,
  resetFailedError,
  type Target,
} from "./errors.ts";
import {
  mayChangeSession,
  PIPELINED_RESET_SQL,
  RESET_SESSION_SQL,
  type SessionReset,
} from "./session_reset.ts";
import { ConnectionSockets, type SocketFactory, TX_FAILED, TX_OPEN, TX_UNKNOWN } from "./wire.ts";
import type { TxStatus } from "./wire.ts";

// Public types name the driver's types with `import("postgres")`, so that the documentation
// links to postgres.js instead of asking us to re-export (and re-document) its whole API.

/** The tagged-template client bound to one connection: postgres.js's `Sql`. */
export type PostgresClient = import("postgres").Sql<Record<string, unknown>>;

/** Driver options the adapter passes on (the pool owns sizing, lifetimes and `onclose`). */
export type DriverOptions = Omit<
  import("postgres").Options<Record<string, import("postgres").PostgresType>>,
  "max" | "idle_timeout" | "max_lifetime" | "onclose"
>;

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
export class PgConnection {
  /** Sequence number, for messages. */
  readonly id: number = nextId++;
  /** The server process id serving this connection (PgBouncer: its own id). */
  pid = 0;
  /** The client handed to `use()` callbacks: the driver, with statement tracking. */
  readonly client: PostgresClient;
  /** Set once the socket closed: the connection must never be used again. */
  closed: PostgresConnectionError | undefined;
  /** A statement on it was cancelled (or abandoned): it is destroyed rather than reused. */
  cancelRequested = false;
  /** How many `transaction()` calls are running on it (savepoints nest inside). */
  transactionDepth = 0;
  /** The first statement error since the innermost `transaction()` began. */
  transactionError: unknown;
  readonly #sql: PostgresClient;
  readonly #sockets: ConnectionSockets;
  readonly #running = new Set<QueryInternals>();
  /** Cancel requests sent, settled when the server closed their socket (or it timed out). */
  readonly #cancels: Promise<void>[] = [];
  readonly #reset: SessionReset;
  /** Not with `prepare: false` (PgBouncer's setting; PgBouncer 1.18 failed on it: README). */
  readonly #pipelineReset: boolean;
  /** A statement that may change the session ran since the last reset. */
  #changedSession = false;
  /** Why the last pipelined cleaning failed: the connection must not run anything more. */
  #resetFailure: unknown;

  private constructor(
    url: string | undefined,
    driver: DriverOptions,
    reset: SessionReset,
  ) {
    this.#reset = reset;
    this.#pipelineReset = driver.prepare !== false;
    this.#sockets = new ConnectionSockets((driver as { socket?: SocketFactory }).socket);
    const options = {
      onnotice: () => {},
      ...driver,
      socket: this.#sockets.factory,
      max: 1,
      idle_timeout: 0, // the pool evicts idle connections, the driver must not
      max_lifetime: 0, // the pool enforces lifetimes
      onclose: () => this.#onClose(),
    };
    this.#sql = (url === undefined ? postgres(options) : postgres(url, options)) as PostgresClient;
    this.client = this.#trackingProxy(this.#sql);
  }

  /** Opens a connection and proves it with a round trip, so failures surface here. */
  static async open(
    url: string | undefined,
    driver: DriverOptions,
    target: Target,
    reset: SessionReset,
    signal: AbortSignal,
  ): Promise<PgConnection> {
    signal.throwIfAborted();
    const conn = new PgConnection(url, driver, reset);
    // On abort, end gracefully: the connect (bounded by connect_timeout) finishes, then the
    // socket closes. Cutting it mid-handshake would reject postgres.js's internal type-fetch
    // query, which nothing awaits: an unhandled rejection.
    const onAbort = () => void conn.#sql.end().catch(() => {});
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      const result = await conn.#sql`select pg_backend_pid() as pid`;
      conn.pid = Number(result[0].pid);
    } catch (error) {
      await conn.#sql.end({ timeout: 0 }).catch(() => {});
      throw signal.aborted ? signal.reason : connectError(error, target);
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
    if (signal.aborted) {
      await conn.close();
      throw signal.reason;
    }
    conn.#sockets.watcher.forget();
    return conn;
  }

  /** The server's transaction status after the last statement ({@link TX_UNKNOWN} over TLS). */
  get txStatus(): TxStatus {
    return this.#sockets.watcher.status;
  }

  /** Whether a transaction is open on it (or failed and not yet rolled back). */
  get inTransaction(): boolean {
    const status = this.txStatus;
    return status === TX_OPEN || status === TX_FAILED ||
      (status === TX_UNKNOWN && this.transactionDepth > 0);
  }

  /**
   * Why it must not be lent, if it must not: its socket closed, or the cleaning after its last
   * lease failed (then the server refuses its statements until the pool destroys it).
   */
  get unusable(): Error | undefined {
    if (this.closed !== undefined) return this.closed;
    if (this.#resetFailure !== undefined) return resetFailedError(this.id, this.#resetFailure);
    return undefined;
  }

  /**
   * The driver without statement tracking, for one-shot statements that share a lease (see
   * one_shot.ts): their batch counts what is in flight, and such a statement is never aborted
   * on its own nor changes the session. Pass their errors through {@link PgConnection.explain}.
   * Throws once the cleaning after the last lease failed.
   */
  get untracked(): PostgresClient {
    if (this.#resetFailure !== undefined) throw resetFailedError(this.id, this.#resetFailure);
    return this.#sql;
  }

  /** Runs SQL of the adapter's own (not counted as the borrower's). */
  run(text: string): Promise<import("postgres").RowList<import("postgres").Row[]>> {
    return this.#sql.unsafe(text).catch((error) => {
      throw this.explain(error);
    });
  }

  /**
   * Whether the server still answers (`SELECT 1`). The pool bounds how long it waits (its
   * validation deadline, `signal`) and destroys a connection that does not answer in time: on
   * abort the ping is cancelled and the connection given up, so that closing it does not wait
   * for a server that may be unreachable. A failed ping resolves `false` rather than rejecting.
   */
  async ping(signal?: AbortSignal): Promise<boolean> {
    if (this.closed || this.cancelRequested || this.#resetFailure !== undefined) return false;
    const giveUp = () => this.abandon();
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
   * Readies it for the next borrower: rolls back a transaction left open or failed (known from
   * ReadyForQuery, so nothing to do costs nothing) and cleans the session per the `reset` policy.
   * From a clean transaction state the cleaning is pipelined (see {@link PIPELINED_RESET_SQL}):
   * sent now, answered ahead of the next borrower's first statement, and a failure discards the
   * connection before any statement of that borrower runs. Throws (so the pool destroys it) when
   * it is closed, cancelled, its last cleaning failed, or it is still running a statement.
   */
  reset(): Promise<void> | void {
    if (this.closed) throw this.closed;
    if (this.cancelRequested) throw discardedError(this.id, "a statement on it was cancelled");
    if (this.#resetFailure !== undefined) throw resetFailedError(this.id, this.#resetFailure);
    if (this.#running.size !== 0) {
      for (const query of this.#running) {
        if (query.executed) {
          this.cancelRunning();
          throw discardedError(this.id, "it was released while a statement was still running");
        }
      }
      this.#running.clear(); // what is left never ran (fragments, unawaited queries)
    }
    const watcher = this.#sockets.watcher;
    const watched = this.txStatus !== TX_UNKNOWN;
    // Unwatched (TLS), statements may run unseen (postgres.js's sql.begin scope): assume some did.
    const ran = watched ? watcher.readies > 0 : true;
    const rollback = this.inTransaction || (!watched && ran);
    const clean = this.#reset === "always"
      ? ran
      : this.#reset === "when-needed" && (this.#changedSession || watcher.parameterChanges > 0);
    const prepared = watcher.prepares > 0;
    this.#changedSession = false;
    this.transactionDepth = 0;
    this.transactionError = undefined;
    if (!rollback && !clean) return watcher.forget();
    if (!rollback && !prepared && this.#pipelineReset) return this.#cleanPipelined();
    watcher.forget();
    return this.#cleanNow(rollback, clean);
  }

  /** Sends the cleaning without waiting: a failure marks the connection unusable. */
  #cleanPipelined(): void {
    this.#sockets.watcher.forget(1); // the cleaning's own ReadyForQuery is not the borrower's
    const cleaning = this.#sql.unsafe(PIPELINED_RESET_SQL);
    // Noted as the driver rejects it, before it handles the answers to what was pipelined behind.
    const internals = cleaning as unknown as QueryInternals, reject = internals.reject;
    internals.reject = (error) => {
      this.#resetFailure ??= error;
      reject(error);
    };
    cleaning.then(undefined, () => {});
  }

  /** Rolls back and/or cleans, awaited: after a transaction left open, or a `PREPARE`. */
  async #cleanNow(rollback: boolean, clean: boolean): Promise<void> {
    if (!clean) await this.#sql`rollback`;
    else await this.#cleanSession(rollback);
    this.#sockets.watcher.forget();
  }

  /** Rolls back (if asked) and cleans the session in one round trip, plus one per `PREPARE`. */
  async #cleanSession(rollback: boolean): Promise<void> {
    const results = await this.#sql.unsafe(
      (rollback ? "rollback; " : "") + RESET_SESSION_SQL,
    ) as unknown as { name: string }[][];
    for (const { name } of results[results.length - 1]) {
      await this.#sql.unsafe(`deallocate "${name.replaceAll('"', '""')}"`);
    }
  }

  /** Cancels, on the server, every statement running on this connection. */
  cancelRunning(): void {
    this.cancelRequested = true;
    this.#sockets.cancelling = true;
    for (const query of this.#running) {
      const cancel = query.canceller;
      if (!query.executed || cancel === null) continue; // never sent: nothing to cancel
      query.canceller = null;
      // Called directly (not via query.cancel()) so a failed cancel request is not unhandled.
      this.#cancels.push(Promise.resolve(cancel(query)).catch(() => {}));
    }
  }

  /**
   * Gives up on it: cancels its statements on the server (the cancel request goes out on its
   * own socket) and marks it for destruction. Nothing here waits for the server.
   */
  abandon(): void {
    this.cancelRunning();
  }

  /**
   * Closes the connection: gracefully (a second for statements to finish); or, once given up,
   * by cutting its socket as soon as the cancel requests are delivered (or timed out), since
   * behind PgBouncer a cancel for a client already gone is dropped.
   */
  async close(): Promise<void> {
    if (!this.cancelRequested && !this.closed) return await this.#sql.end({ timeout: 1 });
    await Promise.all(this.#cancels);
    this.#sockets.destroy();
    await this.#sql.end({ timeout: 0 });
  }

  #onClose(): void {
    if (this.closed) return;
    this.closed = new PostgresConnectionError(
      `PostgreSQL connection #${this.id} (backend pid ${this.pid}) was closed: the server ` +
        "terminated it, restarted, or the network failed. The pool discards it; retry on another.",
      "CONNECTION_CLOSED",
    );
    // Left alone, postgres.js would reconnect on the next query and run it outside the
    // transaction it belonged to. Ending it makes every later query fail instead.
    this.#sql.end({ timeout: 0 }).catch(() => {});
  }

  #trackingProxy(sql: PostgresClient): PostgresClient {
    const note = this.#reset === "when-needed"
      ? (text: unknown) => {
        if (!this.#changedSession && (typeof text !== "string" || mayChangeSession(text))) {
          this.#changedSession = true;
        }
      }
      : undefined;
    const track = (query: unknown): unknown => {
      if (
        query instanceof Promise && typeof (query as { cancel?: unknown }).cancel === "function"
      ) {
        this.#track(query as unknown as QueryInternals);
      }
      return query;
    };
    type Variadic = (...args: unknown[]) => unknown;
    const unsafe = (
      ...args: unknown[]
    ) => (note?.(args[0]), track((sql.unsafe as Variadic)(...args)));
    const file = (
      ...args: unknown[]
    ) => (note?.(undefined), track((sql.file as Variadic)(...args)));
    return new Proxy(sql, {
      apply: (target, self, args) => {
        if (note && Array.isArray(args[0]) && "raw" in args[0]) note(args[0].join(" "));
        return track(Reflect.apply(target, self, args));
      },
      get: (target, key, receiver) => {
        if (key === "unsafe") return unsafe;
        if (key === "file") return file;
        // sql.begin/sql.reserve hand out scopes whose statements this proxy does not see.
        if (note && (key === "begin" || key === "reserve")) note(undefined);
        return Reflect.get(target, key, receiver);
      },
    });
  }

  /**
   * Notes a statement as running until it settles. The driver calls `query.resolve(...)` and
   * `query.reject(...)` as methods, so two shared functions replace them (no closures per
   * statement); the originals and this connection ride on the query object.
   */
  #track(query: QueryInternals): void {
    if (this.#resetFailure !== undefined) throw resetFailedError(this.id, this.#resetFailure);
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
   * A driver error as the adapter reports it: socket failures become one clear
   * {@link PostgresConnectionError}, and so does every error after a failed cleaning (the server
   * refused the statement).
   */
  explain(error: unknown): unknown {
    if (this.#resetFailure !== undefined) return resetFailedError(this.id, this.#resetFailure);
    if (!isDriverClosed(error)) return error;
    if (this.closed) {
      return new PostgresConnectionError(this.closed.message, this.closed.code, { cause: error });
    }
    return connectionLostError(this.id, this.pid, error);
  }
}

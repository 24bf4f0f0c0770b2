/**
 * One pooled PostgreSQL connection: a postgres.js instance with `max: 1`, so that every query
 * made through its {@link PgConnection.client} runs on the same server session.
 *
 * It tracks what the pool needs to know without asking the server: whether a transaction is
 * open (from the command tags of finished statements), whether the socket closed, and which
 * statements are running, so that an abort can cancel them on the server.
 *
 * postgres.js 3.4.9 does not expose these, so this file (and only this file) relies on three
 * of its query internals: a query's `resolve`/`reject` (wrapped to observe results), its
 * `executed` flag and its `canceller` (to cancel without an unhandled rejection).
 *
 * @module
 */
import postgres from "postgres";
import { connectError, errorCode, PostgresConnectionError, type Target } from "./errors.ts";

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
  cancel: () => void;
}

/** Command tags that open or end a transaction. */
const OPENS = new Set(["BEGIN", "START TRANSACTION"]);
const ENDS = new Set(["COMMIT", "ROLLBACK", "PREPARE TRANSACTION"]);

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
  /** A statement on it was cancelled: it is discarded rather than reused. */
  cancelRequested = false;
  /** A transaction is open (or failed and not yet rolled back). */
  inTransaction = false;
  /** A statement failed since the last reset: the transaction state is uncertain. */
  #failed = false;
  readonly #sql: PostgresClient;
  readonly #running = new Set<QueryInternals>();
  readonly #target: Target;

  private constructor(url: string | undefined, driver: DriverOptions, target: Target) {
    this.#target = target;
    const options = {
      onnotice: () => {},
      ...driver,
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
    signal: AbortSignal,
  ): Promise<PgConnection> {
    signal.throwIfAborted();
    const conn = new PgConnection(url, driver, target);
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
    return conn;
  }

  /**
   * Whether the server still answers (`SELECT 1`). The pool bounds how long it
   * waits (its validation deadline) and destroys a connection that does not
   * answer in time; a failed ping resolves `false` rather than rejecting.
   */
  async ping(): Promise<boolean> {
    if (this.closed || this.cancelRequested) return false;
    return await this.#sql`select 1`.then(() => true, () => false);
  }

  /** Whether it must be rolled back before reuse. */
  get needsRollback(): boolean {
    return this.inTransaction || this.#failed;
  }

  /** Readies it for the next borrower: rolls back an open or failed transaction. */
  async reset(): Promise<void> {
    if (this.closed) throw this.closed;
    if (this.cancelRequested) {
      throw new PostgresConnectionError(
        "a statement on this connection was cancelled; it is discarded, not reused",
        "CANCELLED",
      );
    }
    this.#running.clear(); // what is left never ran (fragments, unawaited queries)
    if (this.needsRollback) {
      await this.#sql`rollback`;
      this.inTransaction = false;
      this.#failed = false;
    }
  }

  /** Cancels, on the server, every statement running on this connection. */
  cancelRunning(): void {
    this.cancelRequested = true;
    for (const query of this.#running) {
      const cancel = query.canceller;
      if (!query.executed || cancel === null) continue; // never sent: nothing to cancel
      query.canceller = null;
      // Called directly (not via query.cancel()) so a failed cancel request is not unhandled.
      Promise.resolve(cancel(query)).catch(() => {});
    }
  }

  /** Closes the connection; statements still running get a second to finish. */
  close(): Promise<void> {
    return this.#sql.end({ timeout: 1 });
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
    const track = (query: unknown): unknown => {
      if (
        query instanceof Promise && typeof (query as { cancel?: unknown }).cancel === "function"
      ) {
        this.#track(query as unknown as QueryInternals);
      }
      return query;
    };
    type Variadic = (...args: unknown[]) => unknown;
    const unsafe = (...args: unknown[]) => track((sql.unsafe as Variadic)(...args));
    const file = (...args: unknown[]) => track((sql.file as Variadic)(...args));
    return new Proxy(sql, {
      apply: (target, self, args) => track(Reflect.apply(target, self, args)),
      get: (target, key, receiver) =>
        key === "unsafe" ? unsafe : key === "file" ? file : Reflect.get(target, key, receiver),
    });
  }

  #track(query: QueryInternals): void {
    const { resolve, reject } = query;
    this.#running.add(query);
    query.resolve = (result) => {
      this.#running.delete(query);
      this.#noteCommands(result);
      resolve(result);
    };
    query.reject = (error) => {
      this.#running.delete(query);
      this.#failed = true;
      reject(this.#explain(error));
    };
  }

  /** Driver errors about the socket become one clear {@link PostgresConnectionError}. */
  #explain(error: unknown): unknown {
    if (!isDriverClosed(error)) return error;
    if (this.closed) {
      return new PostgresConnectionError(this.closed.message, this.closed.code, { cause: error });
    }
    return new PostgresConnectionError(
      `PostgreSQL connection #${this.id} (backend pid ${this.pid}) was lost ` +
        `[${errorCode(error)}]: the server closed it, restarted, or the network failed. ` +
        "The pool discards it; retry on another.",
      errorCode(error),
      { cause: error },
    );
  }

  #noteCommands(result: unknown): void {
    // One statement gives a Result (an array with `command`); several (simple protocol) an
    // array of Results.
    const one = (result as { command?: unknown }).command !== undefined;
    for (const r of (one ? [result] : result) as { command?: string }[]) {
      const command = r?.command;
      if (command === undefined) continue;
      if (OPENS.has(command)) this.inTransaction = true;
      else if (ENDS.has(command)) this.inTransaction = false;
    }
  }
}

/** The driver's own "the socket is gone" codes, and the socket errors behind them. */
const DRIVER_CLOSED = new Set([
  "CONNECTION_ENDED",
  "CONNECTION_CLOSED",
  "CONNECTION_DESTROYED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
]);

function isDriverClosed(error: unknown): boolean {
  return DRIVER_CLOSED.has(errorCode(error));
}

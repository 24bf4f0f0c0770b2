/**
 * How one call borrows a connection: never one known to be unusable, ended by its signal or
 * its `timeoutMs` whether or not the server answers, and the connection of an ended call is
 * given up (its statement cancelled on the server, its socket cut), never lent again. And
 * `transaction()`, which is a call that begins and commits.
 *
 * @module
 */
import type { AsyncLocalStorage } from "node:async_hooks";
import type { Lease } from "../../mod.ts";
import type { PgConnection, PostgresClient } from "./connection.ts";
import { PostgresTimeoutError, TransactionRolledBackError } from "./errors.ts";
import type { CallOptions } from "./options.ts";

/** What a call runs on the borrowed connection. */
export type OnConnection<T> = (conn: PgConnection, signal: AbortSignal) => T | Promise<T>;

/**
 * The connection of the call running in an async context, while it runs: a nested call (the
 * adapter's `reentrant`) joins it. Kept here rather than in the core pool, so that a one-shot
 * `query()` can tell whether it is nested without taking a lease.
 */
export interface CallFrame {
  readonly conn: PgConnection;
  active: boolean;
}

/** Where the running call's {@link CallFrame} is kept; `undefined` when not reentrant. */
export type CallContext = AsyncLocalStorage<CallFrame> | undefined;

/** What a call needs from its pool. */
export interface CallHost {
  readonly context: CallContext;
  /** A lease on a connection not known to be unusable; `signal` ends the wait. */
  acquire(options?: { signal?: AbortSignal }): Promise<Lease<PgConnection>>;
  /** Whether `error` means `conn` must be destroyed (the pool's `isFatal`). */
  isFatal(error: unknown, conn: PgConnection): boolean;
}

/** The connection of the call this code runs inside, if any (reentrant pools only). */
export function outerConnection(context: CallContext): PgConnection | undefined {
  const frame = context?.getStore();
  return frame?.active ? frame.conn : undefined;
}

const NEVER_ABORTED = new AbortController().signal;

/**
 * Runs `fn` on a borrowed connection (or the outer call's), honouring `options.signal` and
 * `options.timeoutMs` (checked by the caller): when either ends the call, it rejects at once and
 * the connection is given up, not waited for. The lease has ended when the call settles.
 */
export async function call<T>(
  host: CallHost,
  fn: OnConnection<T>,
  options: CallOptions | undefined,
): Promise<T> {
  const timeoutMs = options?.timeoutMs;
  let signal = options?.signal, timer: ReturnType<typeof setTimeout> | undefined;
  if (timeoutMs !== undefined) {
    const timeout = new AbortController();
    timer = setTimeout(() => timeout.abort(new PostgresTimeoutError(timeoutMs)), timeoutMs);
    signal = signal === undefined ? timeout.signal : AbortSignal.any([signal, timeout.signal]);
  }
  try {
    const outer = outerConnection(host.context);
    if (outer !== undefined) {
      if (outer.unusable) throw outer.unusable;
      return await (signal ? abortable(outer, fn, signal) : fn(outer, NEVER_ABORTED));
    }
    const lease = await host.acquire(signal && { signal });
    const conn = lease.resource;
    const context = host.context;
    const run: OnConnection<T> = context === undefined ? fn : (c, s) => enter(context, c, fn, s);
    let result: T;
    try {
      result = await (signal ? abortable(conn, run, signal) : run(conn, NEVER_ABORTED));
    } catch (error) {
      if (host.isFatal(error, conn)) void lease.destroy("a call failed on it");
      else await lease.release();
      throw error;
    }
    // Retired meanwhile (its server's role changed): destroyed, not cleaned for the next one.
    if (conn.state === "open" && conn.unusable !== undefined) void lease.destroy("retired");
    else await lease.release();
    return result;
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `fn` with `conn` as the connection nested calls join, until it settles. */
async function enter<T>(
  context: AsyncLocalStorage<CallFrame>,
  conn: PgConnection,
  fn: OnConnection<T>,
  signal: AbortSignal,
): Promise<T> {
  const frame: CallFrame = { conn, active: true };
  try {
    return await context.run(frame, fn, conn, signal);
  } finally {
    frame.active = false;
  }
}

/**
 * Runs `fn`, but rejects with `signal.reason` as soon as the signal aborts: the connection is
 * given up (its statement cancelled on the server, the connection marked for destruction).
 */
async function abortable<T>(conn: PgConnection, fn: OnConnection<T>, signal: AbortSignal) {
  signal.throwIfAborted();
  const { promise: aborted, reject } = Promise.withResolvers<never>();
  const onAbort = () => {
    conn.abandon("its call was aborted or timed out");
    reject(signal.reason);
  };
  signal.addEventListener("abort", onAbort, { once: true });
  const work = (async () => await fn(conn, signal))();
  try {
    return await Promise.race([work, aborted]);
  } catch (error) {
    throw signal.aborted ? signal.reason : error;
  } finally {
    signal.removeEventListener("abort", onAbort);
    work.catch(() => {}); // settles after the abort, on a cancelled connection: nobody waits
  }
}

/** Isolation levels `BEGIN` accepts. */
const ISOLATION = new Set(["read committed", "repeatable read", "serializable"]);

/** The `BEGIN` statement for these options; a `RangeError` for an unknown isolation level. */
export function beginStatement(options?: { isolation?: string; readOnly?: boolean }): string {
  const isolation = options?.isolation;
  if (isolation !== undefined && !ISOLATION.has(isolation)) {
    throw new RangeError(
      `transaction(): unknown isolation level '${isolation}' (read committed, repeatable read, serializable)`,
    );
  }
  return "begin" + (isolation ? ` isolation level ${isolation}` : "") +
    (options?.readOnly ? " read only" : "");
}

type Body<T> = (sql: PostgresClient, signal: AbortSignal) => T | Promise<T>;

/**
 * Runs `fn` in a transaction on `conn`: `BEGIN` … `COMMIT`, or a `SAVEPOINT` when a transaction
 * is already open (as Django's `atomic` and SQLAlchemy's `begin_nested` do). It resolves only
 * when the server really committed (or released the savepoint): a failed statement that the
 * callback caught makes it reject with {@link TransactionRolledBackError}. Isolation and
 * read-only options apply to a new transaction only (a savepoint inherits its transaction's).
 */
export async function runTransaction<T>(
  conn: PgConnection,
  begin: string,
  fn: Body<T>,
  signal: AbortSignal,
): Promise<T> {
  const nested = conn.transactionDepth > 0 || conn.inTransaction;
  const savepoint = `poolkit_savepoint_${conn.transactionDepth + 1}`;
  // Not waited for when it may be: the callback's first statement queues behind it, saving a
  // round trip. If it fails, so does everything behind it in the same transaction block.
  const opening = nested ? `savepoint ${savepoint}` : begin;
  if (conn.pipelines) conn.send(opening);
  else await conn.run(opening);
  const outerError = conn.transactionError;
  conn.transactionError = undefined;
  conn.transactionDepth++;
  let result: T;
  try {
    result = await fn(conn.client, signal);
  } catch (error) {
    conn.transactionDepth--;
    if (conn.unusable === undefined) {
      await conn.run(nested ? `rollback to savepoint ${savepoint}` : "rollback").catch(() => {});
    }
    conn.transactionError = outerError;
    throw error;
  }
  conn.transactionDepth--;
  const failure = conn.transactionError;
  conn.transactionError = outerError;
  if (nested) return await releaseSavepoint(conn, savepoint, failure, result);
  const done = await conn.run("commit");
  if (done.command === "ROLLBACK") {
    throw new TransactionRolledBackError(
      "transaction() rolled back instead of committing: a statement in it failed and the " +
        "callback went on (see cause). Nothing it wrote was stored.",
      { cause: failure },
    );
  }
  return result;
}

async function releaseSavepoint<T>(
  conn: PgConnection,
  savepoint: string,
  failure: unknown,
  result: T,
): Promise<T> {
  // Over TLS the status is unknown: a statement that failed inside is taken to have aborted it.
  const status = conn.txStatus;
  if (status === "failed" || (status === "unknown" && failure !== undefined)) {
    await conn.run(`rollback to savepoint ${savepoint}`);
    throw new TransactionRolledBackError(
      "nested transaction() rolled back to its savepoint: a statement in it failed and the " +
        "callback went on (see cause). Nothing it wrote was kept; the outer transaction goes on.",
      { cause: failure },
    );
  }
  await conn.run(`release savepoint ${savepoint}`);
  return result;
}

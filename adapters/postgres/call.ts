/**
 * How one call borrows a connection: never one known to be unusable (closed, or its cleaning
 * failed), ended by its signal or its `deadlineMs` whether or not the server answers, and the
 * connection of an ended call is given up (its statement cancelled on the server, its socket
 * cut), never lent again.
 *
 * @module
 */
import type { AsyncLocalStorage } from "node:async_hooks";
import type { AcquireOptions, Pool } from "../../mod.ts";
import type { PgConnection } from "./connection.ts";
import { PostgresDeadlineError } from "./errors.ts";

/** Per-call options of `use()`, `transaction()` and `query()`. */
export interface CallOptions extends AcquireOptions {
  /**
   * A deadline for the whole call, in ms: the wait for a connection plus every statement. When
   * it passes, the call rejects with {@link PostgresDeadlineError}, the running statement is
   * cancelled on the server and the connection destroyed. (`timeoutMs` bounds only the wait.)
   */
  deadlineMs?: number;
}

/** What a call runs on the borrowed connection. */
export type OnConnection<T> = (conn: PgConnection, signal: AbortSignal) => T | Promise<T>;

/**
 * The connection of the call running in an async context, while it runs: a nested call (the
 * adapter's `reentrant`) joins it. The adapter keeps this itself rather than the core pool, so
 * that a one-shot `query()` can tell whether it is nested without taking a lease.
 */
export interface CallFrame {
  readonly conn: PgConnection;
  active: boolean;
}

/** Where the running call's {@link CallFrame} is kept; `undefined` when not reentrant. */
export type CallContext = AsyncLocalStorage<CallFrame> | undefined;

/** The connection of the call this code runs inside, if any (reentrant pools only). */
export function outerConnection(context: CallContext): PgConnection | undefined {
  const frame = context?.getStore();
  return frame?.active ? frame.conn : undefined;
}

const NEVER_ABORTED = new AbortController().signal;

/** Thrown inside the pool's `use()` when it lent a connection already known to be closed. */
class StaleConnection {
  constructor(readonly conn: PgConnection) {}
}

/** Runs `fn` on a borrowed connection, honouring `options.signal` and `options.deadlineMs`. */
export function call<T>(
  pool: Pool<PgConnection>,
  context: CallContext,
  fn: OnConnection<T>,
  options: CallOptions | undefined,
): Promise<T> {
  const deadlineMs = options?.deadlineMs;
  if (deadlineMs === undefined) return lendLive(pool, context, fn, options);
  if (typeof deadlineMs !== "number" || !(deadlineMs >= 0)) {
    return Promise.reject(
      new TypeError(`deadlineMs must be a number of milliseconds >= 0, got ${deadlineMs}`),
    );
  }
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(new PostgresDeadlineError(deadlineMs)), deadlineMs);
  const signal = options?.signal === undefined
    ? deadline.signal
    : AbortSignal.any([options.signal, deadline.signal]);
  return lendLive(pool, context, fn, { ...options, signal }).finally(() => clearTimeout(timer));
}

/**
 * Borrows until it gets a connection not known to be closed (those are destroyed). With a
 * signal, the call rejects as soon as it aborts while `fn` runs, without waiting for the pool
 * to finish destroying the connection (which waits for the cancel request to go out).
 */
async function lendLive<T>(
  pool: Pool<PgConnection>,
  context: CallContext,
  fn: OnConnection<T>,
  options: AcquireOptions | undefined,
): Promise<T> {
  const signal = options?.signal;
  const outer = outerConnection(context);
  if (outer !== undefined) return await joinOuter(outer, fn, signal);
  const early = signal === undefined ? undefined : Promise.withResolvers<never>();
  const body: OnConnection<T> = early === undefined
    ? fn
    : (conn, s) => abortable(conn, fn, s, early.reject);
  const run = (conn: PgConnection, s: AbortSignal) => {
    if (conn.unusable) throw new StaleConnection(conn);
    return context === undefined ? body(conn, s) : enter(context, conn, body, s);
  };
  let stale: PgConnection | undefined;
  while (true) {
    const used = pool.use(run, options);
    try {
      if (early === undefined) return await used;
      used.catch(() => {}); // when the abort wins the race, this settles later
      return await Promise.race([used, early.promise]);
    } catch (error) {
      if (!(error instanceof StaleConnection)) throw error;
      if (error.conn === stale) throw error.conn.unusable; // lent the same one again: give up
      stale = error.conn;
    }
  }
}

/** A nested call: runs on its outer call's connection, unless that one became unusable. */
async function joinOuter<T>(
  conn: PgConnection,
  fn: OnConnection<T>,
  signal: AbortSignal | undefined,
): Promise<T> {
  if (conn.unusable) throw conn.unusable;
  if (signal === undefined) return await fn(conn, NEVER_ABORTED);
  return await abortable(conn, fn, signal, () => {});
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
 * Runs `fn`, but settles with `signal.reason` as soon as the signal aborts (and tells `gaveUp`):
 * the connection is abandoned (its statement cancelled on the server, the connection marked
 * for destruction) rather than waited for.
 */
async function abortable<T>(
  conn: PgConnection,
  fn: OnConnection<T>,
  signal: AbortSignal,
  gaveUp: (reason: unknown) => void,
): Promise<T> {
  signal.throwIfAborted();
  const { promise: aborted, reject } = Promise.withResolvers<never>();
  const onAbort = () => {
    conn.abandon();
    reject(signal.reason);
    gaveUp(signal.reason);
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

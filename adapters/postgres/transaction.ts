/**
 * `transaction()` on one connection: `BEGIN` … `COMMIT`, or a `SAVEPOINT` when a transaction is
 * already open (as Django's `atomic`, SQLAlchemy's `begin_nested` and Ecto do). It resolves only
 * when the server really committed (or released the savepoint): a failed statement that the
 * callback caught makes it reject with {@link TransactionRolledBackError}.
 *
 * @module
 */
import type { PgConnection, PostgresClient } from "./connection.ts";
import { TransactionRolledBackError } from "./errors.ts";
import { TX_FAILED, TX_UNKNOWN } from "./wire.ts";

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
 * Runs `fn` in a transaction on `conn`, or in a savepoint if one is open. Isolation and
 * read-only options apply to a new transaction only (a savepoint inherits its transaction's).
 */
export async function runTransaction<T>(
  conn: PgConnection,
  begin: string,
  fn: Body<T>,
  signal: AbortSignal,
): Promise<T> {
  const nested = conn.inTransaction;
  const savepoint = `poolkit_savepoint_${conn.transactionDepth + 1}`;
  await conn.run(nested ? `savepoint ${savepoint}` : begin);
  const outerError = conn.transactionError;
  conn.transactionError = undefined;
  conn.transactionDepth++;
  let result: T;
  try {
    result = await fn(conn.client, signal);
  } catch (error) {
    conn.transactionDepth--;
    if (!conn.closed && !conn.cancelRequested) {
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
  if (status === TX_FAILED || (status === TX_UNKNOWN && failure !== undefined)) {
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

/**
 * What a connection is cleaned of before the next borrower gets it: the {@link SessionReset}
 * policy, the SQL that cleans a session, and the rule that says which statements may have left
 * something behind.
 *
 * The cleaning is PgBouncer's `DISCARD ALL` minus its `DEALLOCATE ALL`: postgres.js keeps its own
 * named prepared statements on the connection and would fail on the next use of any of them, so
 * only statements made with SQL `PREPARE` are deallocated.
 *
 * @module
 */

/**
 * When the adapter cleans a session on release (a transaction left open is always rolled back,
 * whatever the policy):
 *
 * - `"always"` (default): after every lease that ran a statement, the session is made as clean
 *   as a new connection's: settings (`SET`, `SET ROLE`, `SET SESSION AUTHORIZATION`,
 *   `set_config`), temporary tables, advisory locks, `LISTEN`, cursors, SQL-level prepared
 *   statements, sequence state. Pipelined ahead of the next borrower's first statement (no
 *   round trip of its own, see {@link PIPELINED_RESET_SQL}), but server work on every lease.
 * - `"when-needed"`: the same, but only after a lease whose SQL text may change the session
 *   (see {@link mayChangeSession}), that used postgres.js's `sql.begin`/`sql.reserve` (whose
 *   statements it does not see), or during which the server reported a changed setting; a lease
 *   of plain statements costs nothing. A server function that changes session state behind a
 *   plain `select` is not seen.
 * - `"never"`: only the rollback. Session state stays for the next borrower.
 */
export type SessionReset = "always" | "when-needed" | "never";

/** The policies, for validation and messages. */
export const SESSION_RESETS: readonly SessionReset[] = ["always", "when-needed", "never"];

/**
 * Cleans a session, in one simple-protocol message (one round trip). Outside any transaction
 * block (the caller rolls back first, in the same message). Ends by listing SQL-level prepared
 * statements, which need their own `DEALLOCATE` (rare: a second round trip then).
 */
export const RESET_SESSION_SQL = [
  "close all",
  "set session authorization default",
  "reset all",
  "unlisten *",
  "select pg_catalog.pg_advisory_unlock_all()",
  "discard temp",
  "discard sequences",
  "select name from pg_catalog.pg_prepared_statements where from_sql",
].join("; ");

/**
 * The same cleaning, sent without waiting for its answer: it goes out ahead of the next
 * borrower's first statement (one write, no round trip of its own). It runs in a transaction
 * block that a failure leaves aborted, so nothing pipelined behind a failed cleaning can run on
 * the unclean session: the server refuses it until a `ROLLBACK`, and the connection is discarded.
 * It cannot deallocate SQL-level prepared statements (that takes their names first); when one
 * exists it fails on purpose (division by zero). The adapter cleans with
 * {@link RESET_SESSION_SQL}, awaited, after a lease whose statements completed a `PREPARE`.
 */
export const PIPELINED_RESET_SQL = [
  "begin",
  "close all",
  "set session authorization default",
  "reset all",
  "unlisten *",
  "discard temp",
  "discard sequences",
  "select pg_catalog.pg_advisory_unlock_all(), 1 / (not exists (select from " +
  "pg_catalog.pg_prepared_statements where from_sql))::int",
  "commit",
].join("; ");

/** SQLSTATE of {@link PIPELINED_RESET_SQL}'s failure on purpose: SQL-level prepared statements. */
export const PREPARED_LEFT_SQLSTATE = "22012";

/**
 * What marks a statement as one that may change session state: a statement (or line) starting
 * with `SET`/`RESET` (so also `SET ROLE`, `SET SESSION AUTHORIZATION`), `LISTEN`, `PREPARE`,
 * `DECLARE`, `DISCARD`, `LOAD`, `DO` or `CALL`; anywhere: `set_config`, `temp`/`temporary`,
 * `with hold`, or an advisory-lock function. Errs towards cleaning: `update t\nset x = 1`
 * counts too.
 */
const SESSION_CHANGING = new RegExp(
  String.raw`(^|[;\n])\s*(set|reset|listen|prepare|declare|discard|load|do|call)\b` +
    String.raw`|\b(set_config|temp|temporary)\b|\bwith\s+hold\b|pg_(try_)?advisory_`,
  "i",
);

/** Whether SQL `text` may change session state (see {@link SessionReset} `"when-needed"`). */
export function mayChangeSession(text: string): boolean {
  return SESSION_CHANGING.test(text);
}

/** Checks the `reset` option; throws a `TypeError` naming the choices. */
export function checkSessionReset(value: unknown): SessionReset {
  if (value === undefined) return "always";
  if (SESSION_RESETS.includes(value as SessionReset)) return value as SessionReset;
  throw new TypeError(
    `createPostgresPool: reset must be one of ${
      SESSION_RESETS.map((r) => `"${r}"`).join(", ")
    }, got ${JSON.stringify(value)}`,
  );
}

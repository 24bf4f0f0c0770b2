/**
 * What a PostgreSQL failure means for the pool: which errors say "this connection is broken"
 * ({@link isConnectionFailure}), and the adapter's own error for connections that could not be
 * opened or were lost ({@link PostgresConnectionError}). No message here ever holds a password.
 *
 * @module
 */

/** A connection to PostgreSQL could not be opened, or was lost while in use. */
export class PostgresConnectionError extends Error {
  /** The driver's or the server's code: `28P01`, `ECONNREFUSED`, `CONNECTION_CLOSED`, ... */
  readonly code: string;
  /** Creates the error; `cause` is the driver's own error. */
  constructor(message: string, code: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "PostgresConnectionError";
    this.code = code;
  }
}

/**
 * `transaction()` (or a nested one, at its savepoint) did not commit: a statement in it failed
 * and the callback went on, so the server rolled the transaction back. Nothing it wrote was
 * stored. `cause` is the server's first error in it.
 */
export class TransactionRolledBackError extends Error {
  /** Creates the error; `cause` is the statement's error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TransactionRolledBackError";
  }
}

/**
 * A call passed its `timeoutMs` (the wait for a connection plus the statements): the running
 * statement was cancelled on the server and the connection destroyed.
 */
export class PostgresTimeoutError extends Error {
  /** The timeout that passed (ms). */
  readonly timeoutMs: number;
  /** Creates the error for a timeout of `timeoutMs`. */
  constructor(timeoutMs: number) {
    super(
      `the call did not finish within its timeoutMs of ${timeoutMs} ms (the wait for a ` +
        "connection plus the statements); a statement it was running was cancelled on the server",
    );
    this.name = "PostgresTimeoutError";
    this.timeoutMs = timeoutMs;
  }
}

const codes = (list: string) => new Set(list.split(" "));

/** Connect errors retrying cannot fix: wrong password, unknown role (or pg_hba), database. */
const PERMANENT_SQLSTATES = codes("28P01 28000 3D000");

/** Driver and socket codes that mean the connection itself is gone. */
const CONNECTION_CODES = codes(
  "CONNECTION_CLOSED CONNECTION_ENDED CONNECTION_DESTROYED CONNECT_TIMEOUT ECONNRESET EPIPE " +
    "ECONNREFUSED ECONNABORTED ETIMEDOUT EHOSTUNREACH ENETUNREACH ERR_SOCKET_CLOSED " +
    "SASL_SIGNATURE_MISMATCH",
);

/**
 * Server SQLSTATEs (besides class 08) after which the server closes the session: admin and
 * crash shutdown (`pg_terminate_backend` too), cannot connect now, idle (in transaction)
 * session timeouts.
 */
const FATAL_SQLSTATES = codes("57P01 57P02 57P03 57P05 25P03");

/** The driver's own "the socket is gone" codes, and the socket errors behind them. */
const DRIVER_CLOSED = codes(
  "CONNECTION_ENDED CONNECTION_CLOSED CONNECTION_DESTROYED ECONNRESET EPIPE ETIMEDOUT",
);

/** Whether `error` or one of its causes passes `test`. */
function anyCause(error: unknown, test: (e: { code?: unknown; severity?: unknown }) => boolean) {
  for (let e = error, depth = 0; e && typeof e === "object" && depth < 5; depth++) {
    if (test(e)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * True when a connect error cannot be fixed by retrying: wrong password (`28P01`), unknown role
 * (`28000`), unknown database (`3D000`). The pool's `isPermanent` hook. A full server (`53300`)
 * is not: the pool retries it.
 */
export function isPermanentConnectError(error: unknown): boolean {
  return anyCause(error, (e) => PERMANENT_SQLSTATES.has(e.code as string));
}

/**
 * True when `error` (or one of its causes) means the connection is broken: socket closed or
 * reset, a connection-exception SQLSTATE (`08*`), a terminated backend, or any FATAL/PANIC.
 * An error the server reports for a statement is not one.
 */
export function isConnectionFailure(error: unknown): boolean {
  return anyCause(error, (e) => {
    const { code, severity } = e;
    return e instanceof PostgresConnectionError || e instanceof Deno.errors.ConnectionReset ||
      e instanceof Deno.errors.BrokenPipe || e instanceof Deno.errors.ConnectionAborted ||
      e instanceof Deno.errors.NotConnected || severity === "FATAL" || severity === "PANIC" ||
      typeof code === "string" &&
        (CONNECTION_CODES.has(code) || FATAL_SQLSTATES.has(code) || /^08...$/.test(code));
  });
}

/** The code of a driver/server error, or `"UNKNOWN"`. */
function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === "string" ? code : "UNKNOWN";
}

/** Where a connection goes, without the password: `postgres@127.0.0.1:5432/app`. */
export interface Target {
  host: string;
  port: number | string;
  user: string;
  database: string;
}

/**
 * Wraps a failure to connect into a clear {@link PostgresConnectionError} naming the server,
 * user and database (never the password) and the driver's reason.
 */
export function connectError(error: unknown, target: Target): PostgresConnectionError {
  const code = errorCode(error);
  const reason = error instanceof Error ? error.message : String(error);
  const hint = code === "28P01" || code === "08P01" && /auth/i.test(reason)
    ? " (check the user and password in the connection URL)"
    : code === "ECONNREFUSED"
    ? " (is the server running and listening there?)"
    : code === "3D000"
    ? " (create the database or fix its name in the URL)"
    : code === "53300"
    ? " (the server or the role has no connection slot left; the pool tries again, slowly)"
    : "";
  return new PostgresConnectionError(
    `cannot connect to PostgreSQL as ${target.user}@${target.host}:${target.port}/` +
      `${target.database}: ${reason} [${code}]${hint}`,
    code,
    { cause: error },
  );
}

/**
 * The opening (login and its first statement) did not finish within `connect_timeout`: the
 * host is silent, or a PgBouncer in front of it accepted the login and holds the statement
 * while it waits for a server that is down.
 */
export function openTimedOutError(target: Target, timeoutMs: number): PostgresConnectionError {
  const error = Object.assign(
    new Error(
      `no answer within connect_timeout (${timeoutMs / 1_000} s) to the login and the first ` +
        "statement; behind PgBouncer, its server may be down",
    ),
    { code: "CONNECT_TIMEOUT" },
  );
  return connectError(error, target);
}

/** Whether the driver says the connection's socket is gone. */
export function isDriverClosed(error: unknown): boolean {
  return DRIVER_CLOSED.has(errorCode(error));
}

/** Connection `id` was lost (`error`, from the driver): one clear error, retry on another. */
export function connectionLostError(
  id: number,
  pid: number,
  error: unknown,
): PostgresConnectionError {
  return new PostgresConnectionError(
    `PostgreSQL connection #${id} (backend pid ${pid}) was lost [${errorCode(error)}]: the ` +
      "server closed it, restarted, or the network failed. The pool discards it; retry on another.",
    errorCode(error),
    { cause: error },
  );
}

/** Connection `id` is given up for `why` (a cancelled statement, say): never reused. */
export function discardedError(id: number, why: string): PostgresConnectionError {
  return new PostgresConnectionError(
    `PostgreSQL connection #${id}: ${why}; it is discarded, not reused`,
    "CANCELLED",
  );
}

/** Cleaning connection `id` after its last lease failed (`cause`): nothing runs on it any more. */
export function resetFailedError(id: number, cause: unknown): PostgresConnectionError {
  return new PostgresConnectionError(
    `PostgreSQL connection #${id}: cleaning the session after its last lease failed (see ` +
      "cause), so no statement runs on it any more; it is discarded, retry on another",
    "RESET_FAILED",
    { cause },
  );
}

/** Connection `id`'s socket closed while it was pooled or in use. */
export function closedError(id: number, pid: number): PostgresConnectionError {
  return new PostgresConnectionError(
    `PostgreSQL connection #${id} (backend pid ${pid}) was closed: the server terminated it, ` +
      "restarted, or the network failed. The pool discards it; retry on another.",
    "CONNECTION_CLOSED",
  );
}

/** Connection `id` was ended by the application's own `sql.end()`. */
export function endedByApplicationError(id: number): PostgresConnectionError {
  return new PostgresConnectionError(
    `PostgreSQL connection #${id} was ended by the application (sql.end() in a callback), so ` +
      "it runs nothing more and the pool discards it. Let the pool close its connections " +
      "(pg.close()); to stop a statement, pass a signal or timeoutMs to the call.",
    "CONNECTION_ENDED_BY_APPLICATION",
  );
}

/**
 * No host could give a connection of the kind `targetSessionAttrs` asks for: each was down,
 * refused, or had another role. The message names every host and what was seen there
 * (`h1:5432: connection refused; h2:5433: standby`). The pool retries, as for any failed
 * connect: callers wait within their deadline, then get a timeout whose `cause` is this.
 */
export class NoEligibleHostError extends PostgresConnectionError {
  /** What was seen on each host, in the order tried. */
  readonly hosts: readonly { host: string; seen: string }[];
  /** Creates the error; `cause` is the last connect failure, if any. */
  constructor(
    targetSessionAttrs: string,
    hosts: readonly { host: string; seen: string }[],
    options?: ErrorOptions,
  ) {
    super(
      `no PostgreSQL host is ${targetSessionAttrs} (targetSessionAttrs): ` +
        hosts.map(({ host, seen }) => `${host}: ${seen}`).join("; "),
      "NO_ELIGIBLE_HOST",
      options,
    );
    this.name = "NoEligibleHostError";
    this.hosts = hosts;
  }
}

/** The code of {@link readOnlyNowError}: the server's own `read_only_sql_transaction`. */
export const READ_ONLY_SQL_TRANSACTION = "25006";

/**
 * A write failed with `25006 read_only_sql_transaction` on a pool that wants writable servers:
 * the server is read-only now (a demoted primary, or a standby), or the transaction was.
 */
export function readOnlyNowError(
  id: number,
  host: string,
  cause: unknown,
): PostgresConnectionError {
  return new PostgresConnectionError(
    `PostgreSQL connection #${id} to ${host}: the server refused a write as read-only ` +
      "(25006 read_only_sql_transaction): it was demoted or is a standby now, or the " +
      "transaction was read only. The pool retires this connection and checks the host's role " +
      "anew; retry, and the next connection goes to a host that accepts writes.",
    READ_ONLY_SQL_TRANSACTION,
    { cause },
  );
}

/** Connection `id` to `host` no longer has the role the pool asks for. */
export function roleChangedError(id: number, host: string, now: string): PostgresConnectionError {
  return new PostgresConnectionError(
    `PostgreSQL connection #${id} to ${host}: the server is ${now} now, not what ` +
      "targetSessionAttrs asks for; the pool retires this connection",
    "ROLE_CHANGED",
  );
}

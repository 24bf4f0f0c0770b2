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

/** Driver and socket codes that mean the connection itself is gone. */
const CONNECTION_CODES = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ERR_SOCKET_CLOSED",
  "SASL_SIGNATURE_MISMATCH",
]);

/** Server SQLSTATEs (besides class 08) after which the server closes the session. */
const FATAL_SQLSTATES = new Set([
  "57P01", // admin_shutdown: pg_terminate_backend, or a fast/smart shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now: the server is starting or stopping
  "57P05", // idle_session_timeout
  "25P03", // idle_in_transaction_session_timeout
]);

/**
 * True when `error` (or one of its causes) means the connection is broken: socket closed or
 * reset, a connection-exception SQLSTATE (`08*`), an administrator shutdown or terminated
 * backend (`57P01`), or any FATAL/PANIC from the server.
 */
export function isConnectionFailure(error: unknown): boolean {
  for (let e = error, depth = 0; e && typeof e === "object" && depth < 5; depth++) {
    if (e instanceof PostgresConnectionError) return true;
    if (
      e instanceof Deno.errors.ConnectionReset || e instanceof Deno.errors.BrokenPipe ||
      e instanceof Deno.errors.ConnectionAborted || e instanceof Deno.errors.NotConnected
    ) return true;
    const { code, severity } = e as { code?: unknown; severity?: unknown };
    if (typeof code === "string") {
      if (CONNECTION_CODES.has(code) || FATAL_SQLSTATES.has(code)) return true;
      if (code.length === 5 && code.startsWith("08")) return true;
    }
    if (severity === "FATAL" || severity === "PANIC") return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** The code of a driver/server error, or `"UNKNOWN"`. */
export function errorCode(error: unknown): string {
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

/** `user@host:port/database`, for messages. */
export function describeTarget(t: Target): string {
  return `${t.user}@${t.host}:${t.port}/${t.database}`;
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
    : "";
  return new PostgresConnectionError(
    `cannot connect to PostgreSQL as ${describeTarget(target)}: ${reason} [${code}]${hint}`,
    code,
    { cause: error },
  );
}

/**
 * The errors a pool throws. All extend {@link PoolError}, so one `instanceof`
 * catches them; each carries the numbers a reader needs to act on it.
 *
 * @module
 */

/** Base class of every error the pool itself raises. */
export class PoolError extends Error {
  /** Creates a pool error; `options.cause` keeps the underlying failure. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** No resource became available before the acquire's deadline. */
export class PoolTimeoutError extends PoolError {
  /** How long the caller waited, in milliseconds. */
  readonly waitedMs: number;
  /**
   * Creates the error. `cause` is the last `create` failure, when one
   * happened while the caller waited: the real reason is never hidden.
   */
  constructor(message: string, waitedMs: number, options?: ErrorOptions) {
    super(message, options);
    this.waitedMs = waitedMs;
  }
}

/** The pool is closing or closed: it hands out nothing more. */
export class PoolClosedError extends PoolError {}

/** Too many callers are already waiting (`maxWaiting`): back off and retry later. */
export class PoolOverloadedError extends PoolError {
  /** Callers waiting when this acquire was refused. */
  readonly waiting: number;
  /** Creates the error with the number of callers already waiting. */
  constructor(message: string, waiting: number) {
    super(message);
    this.waiting = waiting;
  }
}

/**
 * The circuit breaker is open: `create` failed too many times in a row, so
 * the pool fails fast instead of letting callers queue behind a dead backend.
 */
export class CircuitOpenError extends PoolError {
  /** When the breaker will let one probe through, in milliseconds from now. */
  readonly retryAfterMs: number;
  /** Creates the error; `cause` is the last `create` failure. */
  constructor(message: string, retryAfterMs: number, options?: ErrorOptions) {
    super(message, options);
    this.retryAfterMs = retryAfterMs;
  }
}

// ---- messages: built here, so every error of a kind reads the same -----------

/** What an error message says about the pool's size, in one parenthesis. */
export interface PoolSnapshot {
  /** The pool's name. */
  name: string;
  /** Resources alive. */
  size: number;
  /** Configured maximum. */
  max: number;
  /** Resources idle. */
  idle: number;
  /** Callers waiting. */
  waiting: number;
}

/** What the pool knows about the create failures behind an error. */
export interface FailureSummary {
  /** Counted create failures since the last success (0: none). */
  failures: number;
  /** The most recent create failure. */
  lastError: unknown;
  /** Whether the factory's `isPermanent` called it permanent. */
  permanent: boolean;
}

function sizes(s: PoolSnapshot): string {
  return `(size ${s.size}/${s.max}, in use ${s.size - s.idle}, idle ${s.idle}, ` +
    `waiting ${s.waiting})`;
}

/** `Name: message` of any thrown value, for a message that must carry it. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

/**
 * `Pool 'db': no resource within 150 ms (waited 152 ms) (size …)`: names the
 * deadline the caller set, then what was measured.
 */
export function timeoutError(
  pool: PoolSnapshot,
  what: string,
  deadlineMs: number,
  waitedMs: number,
  failure: FailureSummary,
): PoolTimeoutError {
  const failing = failure.lastError !== undefined;
  return new PoolTimeoutError(
    `Pool '${pool.name}': no ${what} within ${deadlineMs} ms (waited ${Math.round(waitedMs)} ms) ` +
      sizes(pool) +
      (failing ? `; creating one failed: ${describeError(failure.lastError)} (see cause)` : ""),
    waitedMs,
    failing ? { cause: failure.lastError } : undefined,
  );
}

/** The breaker is open: says why (the failure itself), until when, and what to do. */
export function circuitOpenError(
  pool: PoolSnapshot,
  retryAfterMs: number,
  failure: FailureSummary,
): CircuitOpenError {
  const reason = describeError(failure.lastError);
  const message = failure.permanent
    ? `Pool '${pool.name}': circuit open: creating a resource failed permanently (${reason}); ` +
      `retrying cannot fix this, so the pool will not try again for ${retryAfterMs} ms. ` +
      "Fix the cause (credentials, configuration), then call pool.invalidate() to retry at once"
    : `Pool '${pool.name}': circuit open after ${failure.failures} failed create attempt(s) ` +
      `in a row, the last: ${reason}; failing fast, next try in ${retryAfterMs} ms`;
  return new CircuitOpenError(message, retryAfterMs, { cause: failure.lastError });
}

/** Too many callers wait already. */
export function overloadedError(pool: PoolSnapshot, maxWaiting: number): PoolOverloadedError {
  return new PoolOverloadedError(
    `Pool '${pool.name}' has ${pool.waiting} callers waiting, the most 'maxWaiting' ` +
      `(${maxWaiting}) allows: shed load or raise maxWaiting ${sizes(pool)}`,
    pool.waiting,
  );
}

/** The pool lends nothing more. */
export function closedError(name: string, state: string): PoolClosedError {
  return new PoolClosedError(`Pool '${name}' is ${state}: it lends nothing more`);
}

/** A hook did not settle by its deadline. */
export function hookTimeoutError(hook: string, ms: number): PoolTimeoutError {
  return new PoolTimeoutError(
    `${hook} did not settle within ${ms} ms (hookTimeoutMs); the pool stopped waiting for it`,
    ms,
  );
}

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

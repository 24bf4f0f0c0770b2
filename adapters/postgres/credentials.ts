/**
 * Credentials that change: the `credentials` option is called for each new connection, and the
 * pool learns when what it returns changed, so that the connections made with the old ones can
 * be retired (a generation, as `pool.invalidate()` has). Nothing here ever prints a password.
 *
 * @module
 */

/** A user and a password to log in with. */
export interface Credentials {
  /** The role to log in as; default: the URL's (or the driver options') user. */
  user?: string;
  /** The password (a short-lived token, say). */
  password: string;
  /**
   * Until when these credentials may be reused (ms since the epoch, or a `Date`): new
   * connections log in with them, without calling the function, until then. Give it for a source
   * that returns a new token on every call (a cloud IAM token): each change of credentials
   * retires the pool's older connections, so without it every new connection would.
   */
  expiresAt?: number | Date;
}

/**
 * The `credentials` option: called for each new connection. `signal` aborts when the pool
 * closes; the pool stops waiting for the call then, whatever the function does.
 */
export type CredentialsSource = (
  options: { signal: AbortSignal },
) => Credentials | Promise<Credentials>;

/** What one new connection logs in with, and which generation of credentials that is. */
export interface Login {
  readonly credentials: Credentials | undefined;
  /** Bumped each time the source returns credentials that differ from the last ones. */
  readonly generation: number;
}

/** Calls a {@link CredentialsSource} and numbers the credentials it returns by generation. */
export class CredentialsSupplier {
  /** The generation whose credentials a connection last logged in with. */
  accepted = 0;
  #last: Credentials | undefined;
  #reusableUntil = -Infinity;
  #generation = 0;

  constructor(readonly source: CredentialsSource | undefined) {}

  /**
   * The credentials for a new connection (a call of the source, checked). Rejects with the
   * signal's reason as soon as `signal` aborts (the pool closing), even if the source hangs.
   */
  async next(signal: AbortSignal): Promise<Login> {
    if (this.source === undefined) return { credentials: undefined, generation: 0 };
    if (this.#last !== undefined && Date.now() < this.#reusableUntil) {
      return { credentials: this.#last, generation: this.#generation };
    }
    let given: unknown;
    const aborted = Promise.withResolvers<never>();
    const onAbort = () => aborted.reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      signal.throwIfAborted();
      given = await Promise.race([this.source({ signal }), aborted.promise]);
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      throw new Error(
        "createPostgresPool: the credentials function failed, so no connection was opened " +
          "(see cause)",
        { cause: error },
      );
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
    const { credentials, expiresAt } = checked(given);
    this.#reusableUntil = expiresAt;
    const last = this.#last;
    if (
      last === undefined || last.user !== credentials.user || last.password !== credentials.password
    ) {
      if (last !== undefined) this.#generation++;
      this.#last = credentials;
    }
    return { credentials, generation: this.#generation };
  }

  /**
   * A connection logged in with `login`. Returns true when that is a newer generation than any
   * before: the connections of older ones are to be retired.
   */
  loggedIn(login: Login): boolean {
    if (login.generation <= this.accepted) return false;
    this.accepted = login.generation;
    return true;
  }
}

/** The credentials given, checked, and until when they may be reused (-Infinity: not). */
function checked(value: unknown): { credentials: Credentials; expiresAt: number } {
  const { user, password, expiresAt } = (value ?? {}) as {
    user?: unknown;
    password?: unknown;
    expiresAt?: unknown;
  };
  const okUser = user === undefined || typeof user === "string";
  const until = expiresAt instanceof Date ? expiresAt.getTime() : expiresAt ?? -Infinity;
  if (typeof until !== "number" || Number.isNaN(until)) {
    throw new TypeError(
      "createPostgresPool: the credentials function returned an expiresAt that is neither a " +
        "Date nor a number of ms since the epoch (Date.now() + 14 * 60_000, say)",
    );
  }
  if (value !== null && typeof value === "object" && okUser && typeof password === "string") {
    const credentials = user === undefined ? { password } : { user, password };
    return { credentials, expiresAt: until };
  }
  // Never the value itself: it may hold a password.
  throw new TypeError(
    "createPostgresPool: the credentials function must return { user?: string, password: " +
      "string, expiresAt?: Date | number } (or a promise of it); it returned " +
      (value === null || typeof value !== "object"
        ? typeof value
        : `an object with ${typeof password === "string" ? "a" : "no"} string password and ` +
          `${okUser ? "a valid" : "a non-string"} user`),
  );
}

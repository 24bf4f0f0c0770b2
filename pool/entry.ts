import { PoolError } from "./errors.ts";

/** Waiting in the idle queue. */
export const IDLE = 1;
/** Lent out (or being reset on its way back). */
export const IN_USE = 2;
/** Being checked by `validate` before it is handed to a waiting caller. */
export const VALIDATING = 4;
/** Being checked by `validate` in a background health check; promised to nobody. */
export const CHECKING = 8;
/** Gone for good: destroyed or being destroyed. */
export const REMOVED = 16;

/** The named states of one pooled resource (bit flags, so a transition can name its sources). */
export type EntryState =
  | typeof IDLE
  | typeof IN_USE
  | typeof VALIDATING
  | typeof CHECKING
  | typeof REMOVED;

const NAMES: Record<EntryState, string> = {
  [IDLE]: "idle",
  [IN_USE]: "in use",
  [VALIDATING]: "validating",
  [CHECKING]: "checking",
  [REMOVED]: "removed",
};

/**
 * One pooled resource and what the pool knows about it (HikariCP's
 * `PoolEntry`). Every state change is a method here that checks the state
 * it leaves, so a bug in the pool shows up as an error at the wrong
 * transition instead of a resource lent twice.
 */
export class Entry<R> {
  /** Current state; see the constants above. */
  state: EntryState = IDLE;
  /** When it last went idle (the pool's clock, ms). */
  idleSince: number;
  /** When a background health check last found it alive (or when it went idle since). */
  checkedAt: number;
  /** Leases handed out so far. */
  uses = 0;
  /**
   * The number of the lease holding it (its `uses` count when lent), 0 while
   * not lent: a number, not the lease, so that lending stores no pointer
   * to a new object in this long-lived one.
   */
  lease = 0;
  /** When the current lease began (use time, leak detection). */
  acquiredAt = 0;
  /** Where the current lease was acquired, when leak detection is on. */
  acquireSite: string | undefined = undefined;
  /** Whether the current lease was reported as a leak already. */
  leakReported = false;

  constructor(
    /** A small number unique within the pool, for events and logs. */
    readonly id: number,
    /** The resource itself. */
    readonly resource: R,
    /** When it was created. */
    readonly createdAt: number,
    /** Past this it is never handed out again. */
    readonly expiresAt: number,
    /** `pool.invalidate()` retires every entry of an older generation. */
    readonly generation: number,
  ) {
    this.idleSince = createdAt;
    this.checkedAt = createdAt;
  }

  /**
   * Lends it (from idle, or straight after a check or its creation); returns
   * the number of the new lease.
   */
  lend(now: number, site: string | undefined): number {
    this.#leave(IDLE | VALIDATING | CHECKING);
    this.state = IN_USE;
    const lease = ++this.uses;
    this.lease = lease;
    this.acquiredAt = now;
    if (site !== undefined) {
      this.acquireSite = site;
      this.leakReported = false;
    }
    return lease;
  }

  /** The lease ended; the entry stays IN_USE until it is idle again or removed. */
  endLease(): void {
    this.#leave(IN_USE);
    this.lease = 0;
    this.acquireSite = undefined;
  }

  /** Back from a lease: idle from `now`. */
  returned(now: number): void {
    this.#leave(IN_USE);
    this.state = IDLE;
    this.idleSince = now;
    this.checkedAt = now;
  }

  /** Taken from idle for a check: `VALIDATING` for a waiter, `CHECKING` in the background. */
  startCheck(kind: typeof VALIDATING | typeof CHECKING): void {
    this.#leave(IDLE);
    this.state = kind;
  }

  /** A check passed and nobody takes it: idle again, keeping its idle age. */
  checked(now: number): void {
    this.#leave(VALIDATING | CHECKING);
    this.state = IDLE;
    this.checkedAt = now;
  }

  /** Retires it. Returns false if it was already removed (nothing to do). */
  remove(): boolean {
    if (this.state === REMOVED) return false;
    this.state = REMOVED;
    this.lease = 0;
    return true;
  }

  #leave(allowed: number): void {
    if ((this.state & allowed) === 0) {
      throw new Error(
        `poolkit internal error: resource ${this.id} is ${NAMES[this.state]}, ` +
          "not in a state it can leave this way (please report this)",
      );
    }
  }
}

// ---- the lease ----------------------------------------------------------------------------

/** What a lease needs from its pool: a way to give the resource back. */
export interface LeaseOwner<R> {
  /** Returns the entry (`reuse`) or destroys it; never rejects. */
  giveBack(entry: Entry<R>, lease: number, reuse: boolean, reason: string): Promise<void>;
  /** The pool's name, for error messages. */
  readonly name: string;
}

/**
 * The right to use one pooled resource until it is released. Use it with
 * `await using lease = await pool.acquire()` and it goes back on its own,
 * whatever happens in the block.
 */
export class Lease<R> implements AsyncDisposable, Disposable {
  #entry: Entry<R>;
  #owner: LeaseOwner<R>;
  #number: number;
  #ended: Promise<void> | undefined;

  /** Made by the pool only: lease `number` of `entry` (see `Entry.lend`). */
  constructor(owner: LeaseOwner<R>, entry: Entry<R>, number: number) {
    this.#owner = owner;
    this.#entry = entry;
    this.#number = number;
    this.#ended = undefined;
  }

  /** The resource. Throws a {@link PoolError} once the lease has ended. */
  get resource(): R {
    const entry = this.#entry;
    if (entry.lease !== this.#number) {
      throw new PoolError(
        `Lease from pool '${this.#owner.name}' has ended: its resource may already be lent to ` +
          "someone else. Acquire a new lease instead of keeping the resource.",
      );
    }
    return entry.resource;
  }

  /** The pooled resource's id within its pool (stable for its life). */
  get id(): number {
    return this.#entry.id;
  }

  /** Whether the lease is still held. */
  get active(): boolean {
    return this.#entry.lease === this.#number;
  }

  /** Gives the resource back to the pool. Idempotent; never rejects. */
  release(): Promise<void> {
    return this.#end(true, "released");
  }

  /** Destroys the resource instead of returning it (it is broken). Idempotent. */
  destroy(reason = "destroyed by its holder"): Promise<void> {
    return this.#end(false, reason);
  }

  /** Same as {@link Lease.release}: for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }

  /** Releases without waiting for the pool's `reset`: for `using`. */
  [Symbol.dispose](): void {
    void this.release();
  }

  #end(reuse: boolean, reason: string): Promise<void> {
    return this.#ended ??= this.#owner.giveBack(this.#entry, this.#number, reuse, reason);
  }
}

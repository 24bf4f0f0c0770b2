import type { Lease } from "./lease.ts";

/** Waiting in the idle queue. */
export const IDLE = 0;
/** Lent out (or being reset on its way back). */
export const IN_USE = 1;
/** Being checked by `validate` before it is handed out. */
export const VALIDATING = 2;
/** Gone for good: destroyed or being destroyed. */
export const REMOVED = 3;

/** The named states of one pooled resource. */
export type EntryState = typeof IDLE | typeof IN_USE | typeof VALIDATING | typeof REMOVED;

/**
 * One pooled resource and what the pool knows about it (HikariCP's
 * `PoolEntry`). Plain fields: the pool changes them, nobody else.
 */
export class Entry<R> {
  /** Current state; see the constants above. */
  state: EntryState = IDLE;
  /** When it last went idle (performance.now()). */
  idleSince: number;
  /** Leases handed out so far. */
  uses = 0;
  /** The lease holding it, while lent out. */
  lease: Lease<R> | undefined = undefined;
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
  }
}

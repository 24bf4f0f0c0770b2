import { PoolError } from "./errors.ts";
import type { Entry } from "./entry.ts";

/** What a lease needs from its pool: a way to give the resource back. */
export interface LeaseOwner<R> {
  /** Returns the entry (`reuse`) or destroys it; never rejects. */
  giveBack(entry: Entry<R>, lease: Lease<R>, reuse: boolean, reason: string): Promise<void>;
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
  #ended: Promise<void> | undefined;

  /** Made by the pool only. */
  constructor(owner: LeaseOwner<R>, entry: Entry<R>) {
    this.#owner = owner;
    this.#entry = entry;
  }

  /** The resource. Throws a {@link PoolError} once the lease has ended. */
  get resource(): R {
    const entry = this.#entry;
    if (entry.lease !== this) {
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
    return this.#entry.lease === this;
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
    return this.#ended ??= this.#owner.giveBack(this.#entry, this, reuse, reason);
  }
}

/**
 * {@link SessionLoops}: `hsm.ops` under load on the engines that run one
 * call at a time per session (`"async"`, `"sync"`, your own), run the way
 * hand-written pkcs11js code would: each of up to `max` sessions is leased
 * once and driven by a loop that takes the next queued operation as soon
 * as the last one is done. Per operation that is one queue entry instead of
 * a lease (acquire, release, and a hand-off to the next waiter).
 *
 * A loop gives its session back as soon as the queue is empty. A loop
 * whose session failed (`isSessionFatal`) destroys it and ends, and another
 * loop takes over what waits; a loop that cannot get a lease fails the
 * queue only when no other loop is there to serve it. The caller's
 * `signal` and `timeoutMs` bound the wait in the queue.
 *
 * @module
 */
import { type Lease, type Pool, PoolClosedError } from "../../mod.ts";
import type { AcquireOptions } from "../../pool/types.ts";
import { isSessionFatal } from "./errors.ts";
import { boundWait, type QueuedJob } from "./queue_wait.ts";
import type { HsmSession } from "./session.ts";

/** What a loop reports for one operation. */
type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** A queued operation. */
interface LoopJob extends QueuedJob<Outcome> {
  run(session: HsmSession): Promise<unknown>;
}

const failed = (error: unknown): Outcome => ({ ok: false, error });

/** Runs submitted operations on up to `max` leased sessions, one loop each. */
export class SessionLoops {
  readonly #pool: Pool<HsmSession>;
  readonly #maxLoops: number;
  readonly #queue: LoopJob[] = [];
  #head = 0;
  #loops = 0;
  #closed: unknown;

  /** Loops on sessions of `pool`, as many as its `max` when it is made. */
  constructor(pool: Pool<HsmSession>) {
    this.#pool = pool;
    this.#maxLoops = pool.stats().max;
  }

  /** Queues `run` for the next free loop; resolves with its value. */
  submit<T>(run: (session: HsmSession) => Promise<T>, options?: AcquireOptions): Promise<T> {
    const { promise, resolve, reject } = Promise.withResolvers<T>();
    const job: LoopJob = {
      run,
      settle: (r) => r.ok ? resolve(r.value as T) : reject(r.error),
    };
    if (this.#closed !== undefined) job.settle(failed(this.#closed));
    else if (options?.signal?.aborted) job.settle(failed(options.signal.reason));
    else {
      if (options?.signal !== undefined || options?.timeoutMs !== undefined) {
        boundWait(job, options, this.#pool, failed);
      }
      this.#queue.push(job);
      if (this.#loops < this.#maxLoops) void this.#loop();
    }
    return promise;
  }

  /** Stops taking work: what waits fails with `error`; loops finish the operation they run. */
  close(error: unknown): void {
    if (this.#closed !== undefined) return;
    this.#closed = error;
    this.#failQueue(error);
  }

  #failQueue(error: unknown): void {
    for (let job = this.#next(); job !== undefined; job = this.#next()) job.settle(failed(error));
  }

  /** The next job still waiting (given-up ones are dropped). */
  #next(): LoopJob | undefined {
    while (this.#head < this.#queue.length) {
      const job = this.#queue[this.#head++];
      if (!job.cancelled) return job;
    }
    this.#queue.length = 0;
    this.#head = 0;
    return undefined;
  }

  async #loop(): Promise<void> {
    this.#loops++;
    let lease: Lease<HsmSession>;
    try {
      lease = await this.#pool.acquire();
    } catch (error) {
      // Another loop (serving, or still waiting for its lease) will take the queue.
      if (--this.#loops === 0) this.#failQueue(error);
      return;
    }
    let fatal: unknown;
    try {
      fatal = await this.#serve(lease);
    } finally {
      this.#loops--;
      if (fatal === undefined) lease[Symbol.dispose]();
      else lease.destroy(`HSM session failed: ${(fatal as Error).message}`).catch(() => {});
      // Jobs that came while this loop ended (or were left by a broken session).
      if (this.#head < this.#queue.length && this.#loops < this.#maxLoops) void this.#loop();
    }
  }

  /** Runs queued jobs on the lease's session until none waits; returns a session-fatal error. */
  async #serve(lease: Lease<HsmSession>): Promise<unknown> {
    for (let job = this.#next(); job !== undefined; job = this.#next()) {
      let session: HsmSession;
      try {
        session = lease.resource; // throws if a forced close took the lease back
      } catch (error) {
        const name = this.#pool.name;
        job.settle(
          failed(new PoolClosedError(`Pool '${name}' took the session back`, { cause: error })),
        );
        return undefined;
      }
      try {
        job.settle({ ok: true, value: await job.run(session) });
      } catch (error) {
        job.settle(failed(error));
        if (isSessionFatal(error)) return error;
      }
    }
    return undefined;
  }
}

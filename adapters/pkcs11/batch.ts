/**
 * {@link BatchRunner}: operations that need no session of the caller's,
 * run in batches on pooled sessions.
 *
 * With an engine that can queue several calls on one session (the worker
 * engine of `dispatch.ts`), a lease per operation wastes the batching: one
 * session can only carry one call per round trip. Here callers just submit
 * operations; runners (at most the pool's `max`) each lease a session, take
 * their share of the queue, issue it on that session at once (the engine
 * sends it to one worker thread in one message, where it runs back to
 * back), and release the lease when the queue is empty. The pool still owns
 * the sessions: never more than `max`, one user at a time.
 *
 * @module
 */
import type { Pool } from "../../mod.ts";
import type { AcquireOptions } from "../../pool/types.ts";
import { isSessionFatal } from "./errors.ts";
import type { HsmSession } from "./session.ts";

interface Job {
  run: (session: HsmSession) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/** Most operations one runner takes from the queue for one round trip. */
const MAX_BATCH = 256;

/** Runs submitted operations in batches on leased sessions. */
export class BatchRunner {
  readonly #pool: Pool<HsmSession>;
  readonly #acquire: AcquireOptions | undefined;
  readonly #queue: Job[] = [];
  #head = 0;
  #runners = 0;

  /** Runs batches on sessions of `pool`; `acquire` applies to each lease. */
  constructor(pool: Pool<HsmSession>, acquire?: AcquireOptions) {
    this.#pool = pool;
    this.#acquire = acquire;
  }

  /** Queues `run` to be called with a leased session; resolves with its result. */
  submit<T>(run: (session: HsmSession) => Promise<T>): Promise<T> {
    const { promise, resolve, reject } = Promise.withResolvers<T>();
    this.#queue.push({ run, resolve: resolve as (value: unknown) => void, reject });
    if (this.#runners < this.#pool.stats().max && this.#runners < this.#pending()) {
      this.#runners++;
      this.#runner();
    }
    return promise;
  }

  #pending(): number {
    return this.#queue.length - this.#head;
  }

  #take(): Job[] {
    const share = Math.min(MAX_BATCH, Math.ceil(this.#pending() / this.#runners));
    const jobs = this.#queue.slice(this.#head, this.#head + share);
    this.#head += share;
    if (this.#head === this.#queue.length) {
      this.#queue.length = 0;
      this.#head = 0;
    }
    return jobs;
  }

  async #runner(): Promise<void> {
    try {
      await using lease = await this.#pool.acquire(this.#acquire);
      while (this.#pending() > 0) {
        const jobs = this.#take();
        const session = lease.resource;
        let fatal: unknown;
        await Promise.all(jobs.map(async (job) => {
          try {
            job.resolve(await job.run(session));
          } catch (error) {
            if (isSessionFatal(error)) fatal = error;
            job.reject(error);
          }
        }));
        if (fatal !== undefined) {
          await lease.destroy(`HSM session failed: ${(fatal as Error).message}`);
          break;
        }
      }
    } catch (error) {
      // No session (pool closed, breaker open, timeout): fail everything that waits.
      const jobs = this.#queue.slice(this.#head);
      this.#queue.length = 0;
      this.#head = 0;
      for (const job of jobs) job.reject(error);
    } finally {
      this.#runners--;
      if (this.#pending() > 0 && this.#runners === 0) {
        this.#runners++;
        this.#runner();
      }
    }
  }
}

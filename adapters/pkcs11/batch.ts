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
/**
 * Batches one runner keeps in flight on its session: while the worker runs
 * one, the next is already queued behind it, so neither thread waits for
 * the other. They run in order on one thread, never at the same time.
 */
const PIPELINE = 2;

/** Runs submitted operations in batches on leased sessions. */
export class BatchRunner {
  readonly #pool: Pool<HsmSession>;
  readonly #acquire: AcquireOptions | undefined;
  readonly #queue: Job[] = [];
  #head = 0;
  #runners = 0;
  readonly #maxRunners: number;

  /**
   * Runs batches on sessions of `pool`, with at most one runner (one
   * session) per engine thread: more would only split the batches. The
   * pool still enforces its own `max` (also after a resize): a runner
   * beyond it waits for a lease like any caller.
   */
  constructor(pool: Pool<HsmSession>, threads: number, acquire?: AcquireOptions) {
    this.#pool = pool;
    this.#acquire = acquire;
    this.#maxRunners = Math.max(1, Math.min(threads, pool.stats().max));
  }

  /** Queues `run` to be called with a leased session; resolves with its result. */
  submit<T>(run: (session: HsmSession) => Promise<T>): Promise<T> {
    const { promise, resolve, reject } = Promise.withResolvers<T>();
    this.#queue.push({ run, resolve: resolve as (value: unknown) => void, reject });
    if (this.#runners < this.#maxRunners && this.#runners < this.#pending()) this.#start();
    return promise;
  }

  #start(): void {
    this.#runners++;
    this.#runner();
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
    let lease;
    try {
      lease = await this.#pool.acquire(this.#acquire);
    } catch (error) {
      // No session (pool closed, breaker open, timeout): fail everything that waits.
      const jobs = this.#queue.slice(this.#head);
      this.#queue.length = 0;
      this.#head = 0;
      for (const job of jobs) job.reject(error);
      this.#runnerDone();
      return;
    }
    const session = lease.resource;
    const inFlight = new Set<Promise<void>>();
    let fatal: unknown;
    let ended = false;
    // Ends the lease before the last batch's callers resume, so they (and
    // stats()) see the session back in the pool.
    const end = () => {
      if (ended) return;
      ended = true;
      if (fatal === undefined) lease[Symbol.dispose]();
      else lease.destroy(`HSM session failed: ${(fatal as Error).message}`).catch(() => {});
    };
    const fire = (jobs: Job[]) => {
      const batch = Promise.allSettled(jobs.map((job) => job.run(session))).then((settled) => {
        inFlight.delete(batch);
        for (const r of settled) {
          if (r.status === "rejected" && isSessionFatal(r.reason)) fatal ??= r.reason;
        }
        if (fatal !== undefined || (inFlight.size === 0 && this.#pending() === 0)) end();
        for (let i = 0; i < jobs.length; i++) {
          const r = settled[i];
          if (r.status === "fulfilled") jobs[i].resolve(r.value);
          else jobs[i].reject(r.reason);
        }
      });
      inFlight.add(batch);
    };
    while (fatal === undefined && !ended) {
      while (this.#pending() > 0 && inFlight.size < PIPELINE) fire(this.#take());
      if (inFlight.size === 0) break;
      await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    end();
    this.#runnerDone();
  }

  #runnerDone(): void {
    this.#runners--;
    if (this.#pending() > 0 && this.#runners < this.#maxRunners) this.#start();
  }
}

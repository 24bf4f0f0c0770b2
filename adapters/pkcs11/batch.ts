/**
 * {@link BatchRunner}: operations that need no session of the caller's,
 * run in batches on pooled sessions by the worker engine.
 *
 * A lease per operation would waste the batching: one session carries one
 * call per round trip. Here callers just submit operations, and work is
 * handed out once per burst of submits (a microtask later), so callers that
 * resume together form one batch. Runners each lease a session (never more
 * than the pool's `max`), at most one per worker thread, each keeping up to
 * two batches in flight on its session: the worker runs one while this
 * thread answers the callers of the other. Both run in order on one thread,
 * never at the same time.
 *
 * A job waits in the queue until a runner sends it; the caller's `signal`
 * and `timeoutMs` bound that wait, as they bound an acquire. A runner that
 * cannot get a lease fails the queue only when no other runner is there to
 * serve it. Leases go back once nothing waits and no runner has work out.
 *
 * @module
 */
import { type Lease, type Pool, PoolClosedError } from "../../mod.ts";
import type { AcquireOptions } from "../../pool/types.ts";
import type { WireJob, WireResult, WorkerEngine } from "./dispatch.ts";
import { isSessionFatal } from "./errors.ts";
import { boundWait, type QueuedJob } from "./queue_wait.ts";
import type { HsmSession } from "./session.ts";

/** A queued operation: the job, and what to do with its result. */
interface BatchJob extends WireJob, QueuedJob<WireResult> {}

/** Most operations in one batch. */
const MAX_BATCH = 256;
/** Batches a worker runner keeps in flight on its session. */
const PIPELINE = 2;
/**
 * Jobs that take this long each, on average, wait rather than compute
 * (SoftHSM's take 20–90 µs; a network HSM's take two round trips): then an
 * engine that may choose its thread count gets a thread per session, up to
 * {@link MOST_WAITING_THREADS}, since waits overlap only across threads.
 */
const WAITING_JOB_US = 300;
/** The most threads a runner asks for when jobs wait. */
const MOST_WAITING_THREADS = 4;

interface Runner {
  lease: Lease<HsmSession> | undefined;
  /** Worker batches in flight. */
  inFlight: number;
  fatal: unknown;
  ended: boolean;
}

/** Runs submitted operations in batches on leased sessions. */
export class BatchRunner {
  readonly #pool: Pool<HsmSession>;
  readonly #engine: WorkerEngine;
  #maxWorkerRunners: number;
  /** Moving average of a job's time on its thread (µs), while the engine may still grow. */
  #jobUs = 0;
  readonly #queue: BatchJob[] = [];
  #head = 0;
  readonly #runners = new Set<Runner>();
  #kickScheduled = false;
  #idleCheckScheduled = false;
  #closed: unknown;

  /**
   * Runs batches on sessions of `pool` through `engine`. The pool enforces
   * its own `max` (also after a resize): a runner beyond it waits for a
   * lease like any caller.
   */
  constructor(pool: Pool<HsmSession>, engine: WorkerEngine) {
    this.#pool = pool;
    this.#engine = engine;
    this.#maxWorkerRunners = Math.max(1, Math.min(engine.threads, pool.stats().max));
  }

  /**
   * Queues a job and resolves with its value; `mapError` turns a failure
   * into the caller's error. `options` bound the wait in the queue.
   */
  submit<T>(
    job: WireJob,
    options?: AcquireOptions,
    mapError?: (e: unknown) => unknown,
  ): Promise<T> {
    const { promise, resolve, reject } = Promise.withResolvers<T>();
    const queued = job as BatchJob;
    queued.settle = (r) =>
      r.ok ? resolve(r.value as T) : reject(mapError ? mapError(r.error) : r.error);
    if (this.#closed !== undefined) queued.settle({ ok: false, error: this.#closed });
    else if (options?.signal?.aborted) queued.settle({ ok: false, error: options.signal.reason });
    else {
      if (options?.signal !== undefined || options?.timeoutMs !== undefined) {
        boundWait(queued, options, this.#pool, (error): WireResult => ({ ok: false, error }));
      }
      this.#queue.push(queued);
      if (!this.#kickScheduled) {
        this.#kickScheduled = true;
        queueMicrotask(this.#scheduledKick);
      }
    }
    return promise;
  }

  readonly #scheduledKick = (): void => {
    this.#kickScheduled = false;
    this.#kick();
  };

  /**
   * Stops taking work: what waits fails with `error`, batches in flight
   * finish, and the leases go back so the pool can close.
   */
  close(error: unknown): void {
    if (this.#closed !== undefined) return;
    this.#closed = error;
    this.#failQueue(error);
    this.#scheduleIdleCheck();
  }

  #pending(): number {
    return this.#queue.length - this.#head;
  }

  /** Up to `count` jobs that still wait (given-up ones are dropped). */
  #take(count: number): BatchJob[] {
    const jobs: BatchJob[] = [];
    while (jobs.length < count && this.#head < this.#queue.length) {
      const job = this.#queue[this.#head++];
      if (!job.cancelled) jobs.push(job);
    }
    if (this.#head === this.#queue.length) {
      this.#queue.length = 0;
      this.#head = 0;
    }
    return jobs;
  }

  #failQueue(error: unknown): void {
    for (const job of this.#take(this.#pending())) job.settle({ ok: false, error });
  }

  #usable(r: Runner): boolean {
    return r.lease !== undefined && r.lease.active && !r.ended && r.fatal === undefined;
  }

  /**
   * Hands out what waits, and starts runners (up to one per thread, one
   * per waiting job). Runners still waiting for their lease, and those
   * started now, count for their share: a burst spreads over all of them
   * instead of filling the first runner's batches. When calls wait on a
   * wire (a network HSM), a runner's batches run one call at a time, and
   * only more runners overlap the waits.
   */
  #kick(): void {
    if (this.#pending() === 0) return;
    const wanted = Math.min(this.#maxWorkerRunners, this.#pending());
    const starting = Math.max(0, wanted - this.#runners.size);
    let slots = starting * PIPELINE;
    for (const r of this.#runners) {
      if (this.#usable(r)) slots += PIPELINE - r.inFlight;
      else if (r.lease === undefined) slots += PIPELINE;
    }
    for (const runner of this.#runners) {
      // A lease a forced close took back: the runner is done once its batches are.
      if (runner.lease?.active === false && runner.inFlight === 0) this.#end(runner);
      if (!this.#usable(runner)) continue;
      while (runner.inFlight < PIPELINE && this.#pending() > 0) {
        const share = Math.ceil(this.#pending() / Math.max(1, slots--));
        const jobs = this.#take(Math.min(MAX_BATCH, share));
        if (jobs.length > 0) this.#send(runner, jobs);
      }
    }
    for (let i = 0; i < starting; i++) this.#start();
  }

  #start(): void {
    const runner: Runner = { lease: undefined, inFlight: 0, fatal: undefined, ended: false };
    this.#runners.add(runner);
    this.#pool.acquire().then(
      (lease) => {
        runner.lease = lease;
        if (this.#closed !== undefined) return this.#end(runner);
        this.#kick();
        this.#scheduleIdleCheck();
      },
      (error) => {
        this.#runners.delete(runner);
        this.#scheduleIdleCheck(); // the others may have been kept for this one
        // Another runner (serving, or still waiting for its lease) will take the queue.
        for (const r of this.#runners) if (r.lease === undefined || this.#usable(r)) return;
        this.#failQueue(error);
      },
    );
  }

  #send(runner: Runner, jobs: BatchJob[]): void {
    let session: HsmSession;
    try {
      session = runner.lease!.resource; // throws if a forced close took the lease back
    } catch (error) {
      this.#end(runner);
      const closed = new PoolClosedError(`Pool '${this.#pool.name}' took the session back`, {
        cause: error,
      });
      for (const job of jobs) job.settle({ ok: false, error: closed });
      return;
    }
    runner.inFlight++;
    this.#engine.runBatch(session, jobs, (results, busyUs) => {
      runner.inFlight--;
      if (this.#engine.grow !== undefined) this.#timed(busyUs / jobs.length);
      this.#finish(runner, jobs, results);
    });
  }

  /** Notes a batch's time per job; grows the engine once jobs turn out to wait. */
  #timed(jobUs: number): void {
    this.#jobUs += (jobUs - this.#jobUs) / 8;
    if (this.#jobUs < WAITING_JOB_US) return;
    const max = this.#pool.stats().max;
    const wanted = Math.min(max, MOST_WAITING_THREADS);
    if (this.#engine.threads >= wanted) return;
    this.#engine.grow!(wanted);
    this.#maxWorkerRunners = Math.max(1, Math.min(this.#engine.threads, max));
  }

  #finish(runner: Runner, jobs: BatchJob[], results: WireResult[]): void {
    for (const r of results) {
      if (!r.ok && isSessionFatal(r.error)) runner.fatal ??= r.error;
    }
    // A broken session goes at once.
    if (runner.fatal !== undefined && runner.inFlight === 0) this.#end(runner);
    for (let i = 0; i < jobs.length; i++) jobs[i].settle(results[i]);
    this.#scheduleIdleCheck();
    this.#kick();
  }

  #scheduleIdleCheck(): void {
    if (this.#idleCheckScheduled) return;
    this.#idleCheckScheduled = true;
    queueMicrotask(this.#idleCheck);
  }

  /**
   * Gives every lease back when nothing waits and no runner has work out.
   * It runs after the callers just answered have had their turn to submit.
   */
  readonly #idleCheck = (): void => {
    this.#idleCheckScheduled = false;
    if (this.#pending() > 0) return;
    for (const r of this.#runners) if (r.inFlight > 0 || r.lease === undefined) return;
    for (const r of [...this.#runners]) this.#end(r);
  };

  #end(runner: Runner): void {
    if (runner.ended) return;
    runner.ended = true;
    this.#runners.delete(runner);
    const lease = runner.lease;
    if (lease === undefined) return;
    if (runner.fatal === undefined) lease[Symbol.dispose]();
    else lease.destroy(`HSM session failed: ${(runner.fatal as Error).message}`).catch(() => {});
    if (this.#pending() > 0) this.#kick();
    else this.#scheduleIdleCheck(); // the others may have been kept for this one
  }
}

/**
 * {@link BatchRunner}: operations that need no session of the caller's,
 * run in batches on pooled sessions by the worker engine.
 *
 * A lease per operation would waste the batching: one session carries one
 * call per round trip. Here callers just submit operations; runners (at
 * most one per worker thread, and never more sessions than the pool's
 * `max`) each lease a session and keep up to two batches of the queue in
 * flight on it: the worker runs one while this thread answers the callers
 * of the other. Both run in order on one thread, never at the same time. A
 * runner gives its lease back as soon as the queue is empty, before the
 * callers of its last batch resume. The pool still owns the sessions.
 *
 * @module
 */
import type { Lease, Pool } from "../../mod.ts";
import type { WireJob, WireResult, WorkerEngine } from "./dispatch.ts";
import { isSessionFatal } from "./errors.ts";
import type { HsmSession } from "./session.ts";

/** A queued operation: the job, and what to do with its result. */
export interface BatchJob extends WireJob {
  /** Turns the worker's result into the caller's value (or error). */
  settle(result: WireResult): void;
}

/** Most operations in one batch. */
const MAX_BATCH = 256;
/** Batches a runner keeps in flight on its session. */
const PIPELINE = 2;

interface Runner {
  lease: Lease<HsmSession> | undefined;
  inFlight: number;
  fatal: unknown;
  ended: boolean;
}

/** Runs submitted operations in batches on leased sessions. */
export class BatchRunner {
  readonly #pool: Pool<HsmSession>;
  readonly #engine: WorkerEngine;
  readonly #maxRunners: number;
  readonly #queue: BatchJob[] = [];
  #head = 0;
  readonly #runners = new Set<Runner>();

  /**
   * Runs batches on sessions of `pool` through `engine`. The pool enforces
   * its own `max` (also after a resize): a runner beyond it waits for a
   * lease like any caller.
   */
  constructor(pool: Pool<HsmSession>, engine: WorkerEngine) {
    this.#pool = pool;
    this.#engine = engine;
    this.#maxRunners = Math.max(1, Math.min(engine.threads, pool.stats().max));
  }

  /** Queues a job; its `settle` is called with the result. */
  submit(job: BatchJob): void {
    this.#queue.push(job);
    this.#kick();
  }

  #pending(): number {
    return this.#queue.length - this.#head;
  }

  #take(slots: number): BatchJob[] {
    // Split what waits over every free batch slot, so a worker always has
    // the next batch while this thread answers the last one.
    const share = Math.min(MAX_BATCH, Math.ceil(this.#pending() / slots));
    const jobs = this.#queue.slice(this.#head, this.#head + share);
    this.#head += share;
    if (this.#head === this.#queue.length) {
      this.#queue.length = 0;
      this.#head = 0;
    }
    return jobs;
  }

  /** Sends batches on runners with free slots; starts a runner if there is room. */
  #kick(): void {
    if (this.#pending() === 0) return;
    let slots = 0;
    for (const r of this.#runners) if (r.lease && !r.ended) slots += PIPELINE - r.inFlight;
    for (const runner of this.#runners) {
      while (
        runner.lease && !runner.ended && runner.fatal === undefined &&
        runner.inFlight < PIPELINE && this.#pending() > 0
      ) {
        this.#send(runner, this.#take(Math.max(1, slots--)));
      }
    }
    if (this.#pending() > 0 && this.#runners.size < this.#maxRunners) this.#start();
  }

  #start(): void {
    const runner: Runner = { lease: undefined, inFlight: 0, fatal: undefined, ended: false };
    this.#runners.add(runner);
    this.#pool.acquire().then(
      (lease) => {
        runner.lease = lease;
        if (this.#pending() === 0) this.#end(runner);
        else this.#kick();
      },
      (error) => {
        // No session (pool closed, breaker open, timeout): fail everything that waits.
        this.#runners.delete(runner);
        const jobs = this.#queue.slice(this.#head);
        this.#queue.length = 0;
        this.#head = 0;
        for (const job of jobs) job.settle({ ok: false, error });
      },
    );
  }

  #send(runner: Runner, jobs: BatchJob[]): void {
    runner.inFlight++;
    this.#engine.runBatch(runner.lease!.resource, jobs, (results) => {
      runner.inFlight--;
      for (const r of results) {
        if (!r.ok && isSessionFatal(r.error)) runner.fatal ??= r.error;
      }
      // Give the lease back first, so the callers resuming below (and
      // stats()) already see the session in the pool.
      if (runner.fatal !== undefined || (this.#pending() === 0 && runner.inFlight === 0)) {
        if (runner.inFlight === 0) this.#end(runner);
      }
      for (let i = 0; i < jobs.length; i++) jobs[i].settle(results[i]);
      this.#kick();
    });
  }

  #end(runner: Runner): void {
    if (runner.ended) return;
    runner.ended = true;
    this.#runners.delete(runner);
    const lease = runner.lease!;
    if (runner.fatal === undefined) lease[Symbol.dispose]();
    else lease.destroy(`HSM session failed: ${(runner.fatal as Error).message}`).catch(() => {});
  }
}

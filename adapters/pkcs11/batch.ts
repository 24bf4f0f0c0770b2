/**
 * {@link BatchRunner}: operations that need no session of the caller's,
 * run in batches on pooled sessions by the worker engine.
 *
 * A lease per operation would waste the batching: one session carries one
 * call per round trip. Here callers just submit operations, and work is
 * handed out once per burst of submits (a microtask later), so callers that
 * resume together form one batch. Runners each lease a session (never more
 * than the pool's `max`),
 * at most one per worker thread, each keeping up to two batches in flight on
 * its session: the worker runs one while this thread answers the callers of
 * the other. Both run in order on one thread, never at the same time.
 *
 * (Running part of each burst on this thread as well, in short synchronous
 * slices, was tried and measured: SoftHSM's locks made both threads slower
 * than one worker alone, so this thread only dispatches.)
 *
 * Leases go back once nothing waits and no runner has work out (checked
 * after the callers of the last batch have had their turn to submit more).
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
/** Batches a worker runner keeps in flight on its session. */
const PIPELINE = 2;

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
  readonly #maxWorkerRunners: number;
  readonly #queue: BatchJob[] = [];
  #head = 0;
  readonly #runners = new Set<Runner>();
  #workerRunners = 0;
  #kickScheduled = false;
  #idleCheckScheduled = false;

  /**
   * Runs batches on sessions of `pool` through `engine`. The pool enforces
   * its own `max` (also after a resize): a runner beyond it waits for a
   * lease like any caller.
   */
  constructor(pool: Pool<HsmSession>, engine: WorkerEngine) {
    this.#pool = pool;
    this.#engine = engine;
    const max = pool.stats().max;
    this.#maxWorkerRunners = Math.max(1, Math.min(engine.threads, max));
  }

  /** Queues a job; its `settle` is called with the result. */
  submit(job: BatchJob): void {
    if (this.#closed !== undefined) {
      job.settle({ ok: false, error: this.#closed });
      return;
    }
    this.#queue.push(job);
    if (this.#kickScheduled) return;
    this.#kickScheduled = true;
    queueMicrotask(this.#scheduledKick);
  }

  readonly #scheduledKick = (): void => {
    this.#kickScheduled = false;
    this.#kick();
  };

  #closed: unknown;

  /**
   * Stops taking work: what waits fails with `error`, batches in flight
   * finish, and the leases go back so the pool can close.
   */
  close(error: unknown): void {
    if (this.#closed !== undefined) return;
    this.#closed = error;
    for (const job of this.#take(this.#pending())) job.settle({ ok: false, error });
    this.#scheduleIdleCheck();
  }

  #pending(): number {
    return this.#queue.length - this.#head;
  }

  #take(count: number): BatchJob[] {
    const jobs = this.#queue.slice(this.#head, this.#head + count);
    this.#head += jobs.length;
    if (this.#head === this.#queue.length) {
      this.#queue.length = 0;
      this.#head = 0;
    }
    return jobs;
  }

  #usable(r: Runner | undefined): r is Runner {
    return r !== undefined && r.lease !== undefined && !r.ended && r.fatal === undefined;
  }

  /** Hands out what waits; starts runners where there is room. */
  #kick(): void {
    if (this.#pending() === 0) return;
    let slots = 0;
    for (const r of this.#runners) if (this.#usable(r)) slots += PIPELINE - r.inFlight;
    for (const runner of this.#runners) {
      if (!this.#usable(runner)) continue;
      while (runner.inFlight < PIPELINE && this.#pending() > 0) {
        const share = Math.ceil(this.#pending() / Math.max(1, slots--));
        this.#send(runner, this.#take(Math.min(MAX_BATCH, share)));
      }
    }
    if (this.#pending() > 0 && this.#workerRunners < this.#maxWorkerRunners) this.#start();
  }

  #start(): void {
    const runner: Runner = { lease: undefined, inFlight: 0, fatal: undefined, ended: false };
    this.#runners.add(runner);
    this.#workerRunners++;
    this.#pool.acquire().then(
      (lease) => {
        runner.lease = lease;
        this.#kick();
        this.#scheduleIdleCheck();
      },
      (error) => {
        // No session (pool closed, breaker open, timeout): fail everything that waits.
        this.#forget(runner);
        for (const job of this.#take(this.#pending())) job.settle({ ok: false, error });
      },
    );
  }

  #send(runner: Runner, jobs: BatchJob[]): void {
    runner.inFlight++;
    this.#engine.runBatch(runner.lease!.resource, jobs, (results) => {
      runner.inFlight--;
      this.#finish(runner, jobs, results);
    });
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

  #forget(runner: Runner): void {
    if (this.#runners.delete(runner)) this.#workerRunners--;
  }

  #end(runner: Runner): void {
    if (runner.ended) return;
    runner.ended = true;
    this.#forget(runner);
    const lease = runner.lease;
    if (lease === undefined) return;
    if (runner.fatal === undefined) lease[Symbol.dispose]();
    else lease.destroy(`HSM session failed: ${(runner.fatal as Error).message}`).catch(() => {});
    if (this.#pending() > 0) this.#kick();
  }
}

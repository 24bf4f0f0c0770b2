/**
 * One-shot statements (`pg.query` outside any `use()` or `transaction()`) share leases: a
 * statement that arrives while a connection is leased for a batch of one-shots joins that batch,
 * so statements queued in the same turn go out in one socket write (postgres.js pipelines them,
 * each with its own Sync: a failing one does not fail its batch-mates). The lease ends when the
 * batch has drained (nothing in flight at the end of a turn) or has taken its
 * {@link DEFAULT_ONE_SHOT_BATCH} statements; the pool's reset (the session reset policy) then
 * runs once for the whole batch.
 *
 * Only statements that cannot change what their batch-mates see may share: never one whose text
 * may change the session ({@link mayChangeSession}) or control a transaction, nor one with a
 * fragment or a callback among its values. Those, and every call with options (a signal, a
 * deadline, a wait bound), run on a lease of their own as `use()` does.
 *
 * @module
 */
import type { Lease } from "../../mod.ts";
import type { PgConnection, PostgresClient } from "./connection.ts";
import { mayChangeSession } from "./session_reset.ts";

/**
 * Default of the `oneShotBatch` option: how many one-shot statements one lease may carry. The
 * same as postgres.js's `max_pipeline` default; measured against 32 in tasks/bench/FINDINGS.md.
 */
export const DEFAULT_ONE_SHOT_BATCH = 100;

/** A statement (or line) that opens, ends or marks a transaction: never shared. */
const TRANSACTION_CONTROL =
  /(^|[;\n])\s*(begin|start|commit|end|rollback|abort|savepoint|release)\b/i;

/** Whether SQL `text` may share a connection with other one-shots (see the module comment). */
export function mayShare(text: string): boolean {
  return !mayChangeSession(text) && !TRANSACTION_CONTROL.test(text);
}

/** The verdict per template (a template literal's strings are one object per call site). */
const templateVerdicts = new WeakMap<TemplateStringsArray, boolean>();

/** Whether a tagged-template statement may share: its text may, and its values are plain. */
export function templateMayShare(strings: TemplateStringsArray, values: unknown[]): boolean {
  for (const value of values) {
    // postgres.js fragments (sql(...), sql`...`, sql.json) are thenables; SQL of their own.
    if (typeof value === "function") return false;
    if (typeof value === "object" && value !== null && "then" in value) return false;
  }
  let verdict = templateVerdicts.get(strings);
  if (verdict === undefined) {
    verdict = mayShare(strings.join(" "));
    templateVerdicts.set(strings, verdict);
  }
  return verdict;
}

/** A statement to run on a batch's connection. */
export type Statement<T> = (client: PostgresClient) => Promise<T>;

interface Waiting {
  statement: Statement<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/** One lease carrying one-shot statements. */
class Batch {
  lease: Lease<PgConnection> | undefined;
  /** Statements it took (its depth), in flight or done. */
  accepted = 0;
  inFlight = 0;
  /** Statements that arrived before the lease did. */
  waiting: Waiting[] = [];
  /** A connection failure seen by one of its statements: destroy, do not lend again. */
  fatal: unknown;
}

/** What the batches need from the pool. */
export interface BatchHost {
  /** A lease on a connection not known to be unusable. */
  acquire(): Promise<Lease<PgConnection>>;
  /** Whether `error` means the connection must be destroyed (the pool's `isFatal`). */
  isFatal(error: unknown, conn: PgConnection): boolean;
}

/** The live batches of one pool. */
export class OneShotBatches {
  readonly #live: Batch[] = [];
  readonly #host: BatchHost;
  readonly #depth: number;
  readonly #maxLeases: number;
  #sweepScheduled = false;

  /** `depth`: statements per lease; `maxLeases`: how many batches may exist before joining. */
  constructor(host: BatchHost, depth: number, maxLeases: number) {
    this.#host = host;
    this.#depth = depth;
    this.#maxLeases = maxLeases;
  }

  /** Runs `statement` in a batch: one just drained, one waiting for its lease, or a new one. */
  run<T>(statement: Statement<T>): Promise<T> {
    const batch = this.#pick();
    batch.accepted++;
    batch.inFlight++;
    if (batch.lease !== undefined) return this.#send(batch, statement);
    const { promise, resolve, reject } = Promise.withResolvers<T>();
    batch.waiting.push({ statement, resolve: resolve as (value: unknown) => void, reject });
    return promise;
  }

  /**
   * An idle batch first (its connection waits for nothing), then one still waiting for its
   * lease, then a new lease while fewer than `maxLeases` batches exist, then the least busy.
   */
  #pick(): Batch {
    let waiting: Batch | undefined, busy: Batch | undefined;
    for (const batch of this.#live) {
      if (batch.accepted >= this.#depth || batch.fatal !== undefined) continue;
      const lease = batch.lease;
      if (lease === undefined) waiting ??= batch;
      else if (lease.resource.unusable !== undefined) continue;
      else if (batch.inFlight === 0) return batch;
      else if (busy === undefined || batch.inFlight < busy.inFlight) busy = batch;
    }
    if (waiting !== undefined) return waiting;
    if (busy === undefined || this.#live.length < this.#maxLeases) return this.#open();
    return busy;
  }

  #open(): Batch {
    const batch = new Batch();
    this.#live.push(batch);
    this.#host.acquire().then(
      (lease) => this.#leased(batch, lease),
      (error) => this.#refused(batch, error),
    );
    return batch;
  }

  #leased(batch: Batch, lease: Lease<PgConnection>): void {
    batch.lease = lease;
    const waiting = batch.waiting;
    batch.waiting = [];
    for (const { statement, resolve, reject } of waiting) {
      this.#send(batch, statement).then(resolve, reject);
    }
  }

  #refused(batch: Batch, error: unknown): void {
    this.#remove(batch);
    for (const { reject } of batch.waiting) reject(error);
    batch.waiting = [];
  }

  #send<T>(batch: Batch, statement: Statement<T>): Promise<T> {
    const conn = batch.lease!.resource;
    let sent: Promise<T>;
    try {
      sent = statement(conn.untracked);
    } catch (error) {
      this.#finished(batch, error);
      return Promise.reject(error);
    }
    return sent.then(
      (result) => (this.#finished(batch, undefined), result),
      (error) => {
        const explained = conn.explain(error);
        this.#finished(batch, explained);
        throw explained;
      },
    );
  }

  #finished(batch: Batch, error: unknown): void {
    const conn = batch.lease!.resource;
    if (error !== undefined && batch.fatal === undefined && this.#host.isFatal(error, conn)) {
      batch.fatal = error;
    }
    if (--batch.inFlight > 0) return;
    if (batch.accepted >= this.#depth || batch.fatal !== undefined) return this.#end(batch);
    // Drained for now: a caller that sends its next statement in this turn joins again. One
    // sweep per turn ends whatever is still drained then.
    if (this.#sweepScheduled) return;
    this.#sweepScheduled = true;
    setImmediate(this.#sweep);
  }

  readonly #sweep = (): void => {
    this.#sweepScheduled = false;
    const live = this.#live;
    for (let i = live.length - 1; i >= 0; i--) {
      const batch = live[i];
      if (batch.lease !== undefined && batch.inFlight === 0) this.#end(batch);
    }
  };

  /** The lease ends: the pool resets the connection (once for the batch) or destroys it. */
  #end(batch: Batch): void {
    if (!this.#remove(batch)) return;
    const lease = batch.lease!;
    const conn = lease.resource;
    if (batch.fatal !== undefined || conn.unusable !== undefined || conn.cancelRequested) {
      void lease.destroy("a one-shot statement failed on the connection");
    } else {
      void lease.release();
    }
  }

  #remove(batch: Batch): boolean {
    const i = this.#live.indexOf(batch);
    if (i < 0) return false;
    this.#live.splice(i, 1);
    return true;
  }
}

/**
 * One-shot statements (`pg.query` outside any `use()` or `transaction()`) share leases: a
 * statement that arrives while a connection is leased for a batch of one-shots joins that batch,
 * so statements queued in the same turn go out in one socket write (postgres.js pipelines them,
 * each with its own Sync: a failing one does not fail its batch-mates). The lease ends as soon as
 * the batch has drained (nothing in flight), before the last statement's caller resumes, or
 * when it has taken its `oneShotBatch` statements; the cleaning then runs once for the batch.
 *
 * Only statements that cannot change what their batch-mates see may share: never one whose text
 * may change the session or control a transaction, nor one with a fragment or a callback among
 * its values. Those, and every call with options, run on a lease of their own as `use()` does.
 * Whatever a lease ran, the cleaning when it ends covers it: this rule only keeps batch-mates
 * from seeing each other's session changes.
 *
 * @module
 */
import type { Lease } from "../../mod.ts";
import type { CallHost } from "./call.ts";
import type { PgConnection, PostgresClient } from "./connection.ts";

/**
 * A statement (or line) starting with `SET`/`RESET`, `LISTEN`, `PREPARE`, `DECLARE`, `DISCARD`,
 * `LOAD`, `DO` or `CALL`; anywhere: `set_config`, `temp`/`temporary`, `with hold`, or an
 * advisory-lock function. Errs towards a lease of its own: `update t\nset x = 1` counts too.
 */
const SESSION_CHANGING = new RegExp(
  String.raw`(^|[;\n])\s*(set|reset|listen|prepare|declare|discard|load|do|call)\b` +
    String.raw`|\b(set_config|temp|temporary)\b|\bwith\s+hold\b|pg_(try_)?advisory_`,
  "i",
);

/** A statement (or line) that opens, ends or marks a transaction: never shared. */
const TRANSACTION_CONTROL =
  /(^|[;\n])\s*(begin|start|commit|end|rollback|abort|savepoint|release)\b/i;

/** Whether SQL `text` may share a connection with other one-shots (see the module comment). */
export function mayShare(text: string): boolean {
  return !SESSION_CHANGING.test(text) && !TRANSACTION_CONTROL.test(text);
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

/** The live batches of one pool. */
export class OneShotBatches {
  readonly #live: Batch[] = [];
  readonly #host: CallHost;
  readonly #depth: number;
  readonly #maxLeases: number;

  /** `depth`: statements per lease; `maxLeases`: how many batches may exist before joining. */
  constructor(host: CallHost, depth: number, maxLeases: number) {
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
      async (result) => {
        await this.#finished(batch, undefined);
        return result;
      },
      async (error) => {
        const explained = conn.explain(error);
        await this.#finished(batch, explained);
        throw explained;
      },
    );
  }

  /** One statement of `batch` settled; the last one in flight ends its lease. */
  #finished(batch: Batch, error: unknown): Promise<void> | undefined {
    const conn = batch.lease!.resource;
    if (error !== undefined && batch.fatal === undefined && this.#host.isFatal(error, conn)) {
      batch.fatal = error;
    }
    if (--batch.inFlight > 0) return undefined;
    return this.#end(batch);
  }

  /**
   * The lease ends: the pool resets the connection (once for the batch) or destroys it. The
   * release is awaited (it does not wait for the server), so that the caller resumes after it.
   */
  #end(batch: Batch): Promise<void> | undefined {
    if (!this.#remove(batch)) return undefined;
    const lease = batch.lease!;
    if (batch.fatal !== undefined || lease.resource.unusable !== undefined) {
      void lease.destroy("a one-shot statement failed on the connection");
      return undefined;
    }
    return lease.release();
  }

  #remove(batch: Batch): boolean {
    const i = this.#live.indexOf(batch);
    if (i < 0) return false;
    this.#live.splice(i, 1);
    return true;
  }
}

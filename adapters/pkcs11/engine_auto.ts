/**
 * {@link createAutoEngine}: the default engine, which chooses by load.
 *
 * Measured with `tasks/bench/hsm_calls.ts` (see `tasks/bench/FINDINGS.md`):
 * a lone caller is served best on this thread (nothing to batch, and a
 * hand-off to another thread costs more than SoftHSM's whole call: see
 * `engine_inline.ts`, which sends slow calls and slow modules to libuv's
 * thread pool instead), while under concurrency the worker engine's
 * batches cost the least CPU per operation (about 16 operations per message
 * at 32 callers) and keep every PKCS#11 call, `*Init` included, off the
 * event loop's thread. So session calls (`hsm.use`) and an operation of
 * `hsm.ops` that finds no other in flight take the first path; the others
 * are batched onto worker threads. The threads start with the first batch:
 * a handle that never sees concurrency never starts one.
 *
 * @module
 */
import { checkThreads, createWorkerEngine, type WorkerEngine } from "./dispatch.ts";
import { inlineWhenFast } from "./engine_inline.ts";
import { asyncEngine } from "./engine_local.ts";
import { HsmError } from "./errors.ts";
import type { SessionHandle } from "./handle.ts";

/** Options of {@link createAutoEngine}. */
export interface AutoEngineOptions {
  /** The module's path (each worker loads its own binding). */
  library: string;
  /**
   * Worker threads for batches. Default: the number of cores minus one,
   * from 1 to 4, and up to the pool's `max` (at most 4) once batched calls
   * turn out to wait rather than compute (see `batch.ts`).
   */
  threads?: number;
}

/**
 * The engine `openHsm()` uses when none is named: a lone operation's call
 * on this thread while the module proves fast (else `*Async`), batches on
 * worker threads (started on first need) under concurrency. Close it to end
 * the threads.
 */
export function createAutoEngine(options: AutoEngineOptions): WorkerEngine {
  const threads = checkThreads(options.threads);
  let workers: WorkerEngine | undefined;
  let closed = false;
  const started = () =>
    workers ??= createWorkerEngine({ library: options.library, threads: options.threads });
  const engine: WorkerEngine = {
    name: "auto",
    batching: true,
    byLoad: true,
    get threads() {
      return workers?.threads ?? threads;
    },
    encrypt: inlineWhenFast("encrypt"),
    decrypt: inlineWhenFast("decrypt"),
    sign: inlineWhenFast("sign"),
    verify: asyncEngine.verify,
    digest: asyncEngine.digest,
    runBatch(session, jobs, done) {
      if (closed && workers === undefined) {
        const error = new HsmError("the engine is closed", { operation: "dispatch" });
        return done(jobs.map(() => ({ ok: false, error })), 0);
      }
      started().runBatch(session, jobs, done); // once closed, it fails the jobs itself
    },
    async settled(session: SessionHandle) {
      await asyncEngine.settled!(session);
      await workers?.settled(session);
    },
    async close() {
      closed = true;
      await workers?.close();
    },
  };
  // Unless told how many, it adds threads when batched calls turn out to wait (batch.ts).
  if (options.threads === undefined) {
    engine.grow = (count) => closed || started().grow?.(count);
  }
  return engine;
}

/**
 * {@link createWorkerEngine}: crypto calls dispatched to Deno Workers that
 * run them synchronously, in batches.
 *
 * Why: pkcs11js's `*Async` calls hand every call to libuv's thread pool,
 * which costs 60-80 µs per call on this VM, more than a 1 KiB AES-GCM
 * (about 22 µs) or an ECDSA P-256 signature (about 50 µs) itself. Running
 * synchronously on the main thread is fast per call but blocks the event
 * loop and uses one core. Here each worker has its own binding to the same
 * (already initialised) module; the main thread only queues jobs and, once
 * per turn of the event loop, posts each worker one message with every job
 * queued for it. The worker runs them back to back with the synchronous
 * calls and answers with one message. The hand-off cost is paid once per
 * batch, the main thread is never blocked by the HSM, and the crypto runs on
 * other cores.
 *
 * Measured on this 2-core VM (shared with other jobs, so noisy), 1 KiB
 * AES-GCM encrypt and ECDSA P-256 sign with token keys, 32 concurrent
 * callers through `hsm.ops`, medians of interleaved 1 s rounds, against raw
 * pkcs11js in a synchronous loop on one session: the `"async"` engine
 * reached 0.35x (AES) and 0.50x (ECDSA); this engine with one worker
 * 0.50-0.70x and 0.71-0.88x (the higher ratios when the machine was busier:
 * the raw loop suffers more from losing its core), with the event loop's
 * 1 ms timer p99 late by 2-4 ms (idle: 2.8 ms). Per operation the main
 * thread spends about 6 µs and the worker about 7 µs more than the raw
 * loop. More parallelism did not help: a second worker thread, or running
 * part of each batch on the main thread, made both threads slower (SoftHSM
 * serialises calls on its internal locks: two threads signing cost 28% more
 * CPU per signature), hence the default of one thread per spare core.
 *
 * A session is used by one caller at a time (the pool sees to it), and
 * PKCS#11 sessions may be used from any thread of the process when the
 * module was initialised with OS locking, which the registry does.
 *
 * @module
 */
import type { Buffer } from "node:buffer";
import pkcs11js from "pkcs11js";
import { HsmError } from "./errors.ts";
import { type BytesCall, type CryptoEngine, SessionActivity } from "./engine.ts";
import type { SessionHandle } from "./handle.ts";
import {
  DECRYPT,
  DIGEST,
  ENCRYPT,
  SIGN,
  VERIFY,
  type WireJob,
  type WireResult,
} from "./dispatch_wire.ts";
import { Thread } from "./dispatch_thread.ts";

export type { WireJob, WireResult };

/** Options of {@link createWorkerEngine}. */
export interface WorkerEngineOptions {
  /** The module's path (each worker loads its own binding). */
  library: string;
  /**
   * Worker threads. Default: the number of cores minus one, from 1 to 4,
   * and up to a thread per pooled session (at most 4) once batched calls
   * turn out to wait rather than compute (see `batch.ts`).
   */
  threads?: number;
}

/** A {@link CryptoEngine} that owns threads: close it to end them. */
export interface WorkerEngine extends CryptoEngine {
  /** Calls on one session may be queued together: they run in order on one thread. */
  readonly batching: true;
  /**
   * Whether `hsm.ops` batches only under load: an operation that finds no
   * other in flight runs through the engine's own calls instead.
   */
  readonly byLoad?: boolean;
  /** Worker threads. */
  readonly threads: number;
  /**
   * Adds worker threads up to `threads` in all (nothing once closed).
   * Present only where the engine may choose its thread count itself.
   */
  grow?(threads: number): void;
  /**
   * Runs `jobs` on `session` in order, on one thread, as one message; calls
   * `done` with every result (in job order) when the batch is back.
   */
  runBatch(
    session: SessionHandle,
    jobs: WireJob[],
    done: (results: WireResult[], busyUs: number) => void,
  ): void;
  /** Resolves once no job of `session` is queued or running on a thread. */
  settled(session: SessionHandle): Promise<void>;
  /**
   * Ends the workers once each has attached to the module (so none can
   * initialise it after its owner finalised it) and finished the batch it
   * runs (so none calls a finalised module); what is still queued fails
   * with an {@link HsmError}.
   */
  close(): Promise<void>;
}

/**
 * One core stays with the main thread (it packs and answers every batch);
 * measured on 2 cores, a second worker only added SoftHSM lock contention.
 */
const defaultThreads = () => Math.min(4, Math.max(1, (navigator.hardwareConcurrency ?? 2) - 1));

/** Checks a thread count: a whole number from 1 to 64 (`undefined`: the default). */
export function checkThreads(threads: number | undefined): number {
  const count = threads ?? defaultThreads();
  if (!Number.isInteger(count) || count < 1 || count > 64) {
    throw new RangeError(`threads must be a whole number from 1 to 64, got ${count}`);
  }
  return count;
}

/** Which thread a session's jobs go to, and how many of them are out. */
interface Affinity {
  thread: Thread;
  jobs: number;
}

/** How long `close()` lets the batches in flight finish before it ends the threads. */
const DRAIN_LIMIT_MS = 10_000;

class Workers implements WorkerEngine {
  readonly batching = true;
  readonly #library: string;
  readonly #threads: Thread[] = [];
  readonly #affinity = new WeakMap<SessionHandle, Affinity>();
  readonly #activity = new SessionActivity();
  #closed = false;

  /** Only when not told how many threads: the batch runner grows it once calls turn out to wait. */
  readonly grow?: (threads: number) => void;

  constructor(options: WorkerEngineOptions) {
    this.#library = options.library;
    this.#add(checkThreads(options.threads));
    if (options.threads === undefined) this.grow = (threads) => this.#add(threads);
  }

  get name(): string {
    return `workers(${this.#threads.length})`;
  }

  get threads(): number {
    return this.#threads.length;
  }

  #add(threads: number): void {
    if (this.#closed) return;
    const count = Math.min(threads, 64);
    while (this.#threads.length < count) this.#threads.push(new Thread(this.#library));
  }

  /**
   * The thread for a session's next jobs: the one it already has jobs on
   * (they must run in order, never two at a time), else the least busy.
   */
  #claim(session: SessionHandle, jobs: number): Affinity {
    let held = this.#affinity.get(session);
    if (held === undefined || held.jobs === 0) {
      let thread = this.#threads[0];
      for (const t of this.#threads) if (t.inFlight < thread.inFlight) thread = t;
      held = { thread, jobs: 0 };
      this.#affinity.set(session, held);
    }
    held.jobs += jobs;
    this.#activity.begin(session, jobs);
    return held;
  }

  #unclaim(session: SessionHandle, held: Affinity, jobs: number): void {
    held.jobs -= jobs;
    this.#activity.end(session, jobs);
  }

  settled(session: SessionHandle): Promise<void> {
    return this.#activity.settled(session);
  }

  #closedError(): HsmError {
    return new HsmError("the worker engine is closed", { operation: "dispatch" });
  }

  /** One PKCS#11 call for the {@link CryptoEngine} methods. */
  #call<T>(session: SessionHandle, job: WireJob): Promise<T> {
    if (this.#closed) return Promise.reject(this.#closedError());
    let handle: Buffer;
    try {
      handle = session.handle; // throws if the session is closed
    } catch (error) {
      return Promise.reject(error);
    }
    const held = this.#claim(session, 1);
    const { promise, resolve, reject } = Promise.withResolvers<T>();
    const thread = held.thread;
    thread.calls.push({
      session: handle,
      job,
      resolve: (value) => {
        this.#unclaim(session, held, 1);
        resolve(value as T);
      },
      reject: (error) => {
        this.#unclaim(session, held, 1);
        reject(error);
      },
    });
    if (!thread.scheduled) {
      thread.scheduled = true;
      queueMicrotask(thread.flush);
    }
    return promise;
  }

  #bytes(kind: number): BytesCall {
    return (s, m, key, input, outLength) =>
      this.#call(s, { kind, mechanism: m.mechanism, gcm: gcmOf(m), key, input, outLength });
  }

  readonly encrypt: BytesCall = this.#bytes(ENCRYPT);
  readonly decrypt: BytesCall = this.#bytes(DECRYPT);
  readonly sign: BytesCall = this.#bytes(SIGN);

  verify(s: SessionHandle, m: pkcs11js.Mechanism, key: Buffer, input: Uint8Array, sig: Uint8Array) {
    const job = { kind: VERIFY, mechanism: m.mechanism, key, input, signature: sig, outLength: 0 };
    return this.#call<boolean>(s, job);
  }

  digest(s: SessionHandle, m: pkcs11js.Mechanism, input: Uint8Array, out: number) {
    const job = { kind: DIGEST, mechanism: m.mechanism, key: null, input, outLength: out };
    return this.#call<Uint8Array<ArrayBuffer>>(s, job);
  }

  runBatch(
    session: SessionHandle,
    jobs: WireJob[],
    done: (results: WireResult[], busyUs: number) => void,
  ): void {
    let handle: Buffer;
    try {
      if (this.#closed) throw this.#closedError();
      handle = session.handle;
    } catch (error) {
      done(jobs.map(() => ({ ok: false, error })), 0);
      return;
    }
    const held = this.#claim(session, jobs.length);
    held.thread.post(jobs.map(() => handle), jobs, (results, busyUs) => {
      this.#unclaim(session, held, jobs.length);
      done(results, busyUs);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // A worker still starting would attach (C_Initialize) after we are gone,
    // and one still running a batch would call a module about to be
    // finalised: wait for both (bounded), then end the threads.
    const { promise, resolve } = Promise.withResolvers<void>();
    const timer = setTimeout(resolve, DRAIN_LIMIT_MS);
    Deno.unrefTimer(timer);
    Promise.all(this.#threads.map(async (t) => {
      await t.ready;
      await t.drained(DRAIN_LIMIT_MS);
    })).then(() => resolve());
    await promise;
    clearTimeout(timer);
    for (const thread of this.#threads) {
      thread.worker.terminate();
      thread.fail(new Error("engine closed"));
    }
  }
}

/** The AES-GCM parameters of a mechanism, for the wire (the only parameters it carries). */
function gcmOf(m: pkcs11js.Mechanism): WireJob["gcm"] {
  const param = m.parameter as
    | { type?: number; iv?: Uint8Array; aad?: Uint8Array; tagBits?: number }
    | undefined;
  if (param === undefined) return undefined;
  if (param.type !== pkcs11js.CK_PARAMS_AES_GCM) {
    throw new TypeError("the worker engine carries no mechanism parameters but AES-GCM's");
  }
  return { iv: param.iv, aad: param.aad, tagBits: param.tagBits ?? 128 };
}

/**
 * Starts the worker threads and returns an engine that runs every crypto
 * call on them. `openHsm({ engine: "workers" })` makes one and closes it
 * with the handle; pass your own to share threads between handles.
 */
export function createWorkerEngine(options: WorkerEngineOptions): WorkerEngine {
  return new Workers(options);
}

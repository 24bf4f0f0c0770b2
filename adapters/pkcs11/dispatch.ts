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
import { HsmError, toHsmError } from "./errors.ts";
import type { CryptoEngine } from "./engine.ts";
import type { SessionHandle } from "./handle.ts";
import {
  DECRYPT,
  DIGEST,
  ENCRYPT,
  FAILED_INIT,
  INIT,
  J,
  JOB_WORDS,
  type JobBatch,
  OK_BYTES,
  OK_TRUE,
  OPERATION,
  R,
  RESULT_WORDS,
  type ResultBatch,
  SIGN,
  VERIFY,
} from "./dispatch_wire.ts";

/** Options of {@link createWorkerEngine}. */
export interface WorkerEngineOptions {
  /** The module's path (each worker loads its own binding). */
  library: string;
  /** Worker threads. Default: the number of cores minus one, from 1 to 4. */
  threads?: number;
}

/** One job for a worker: a kind from `dispatch_wire.ts` and its bytes. */
export interface WireJob {
  /** Job kind (`ENCRYPT`, ..., `SEAL_GCM`, ...). */
  kind: number;
  /** The `CKM_*` mechanism. */
  mechanism: number;
  /** AES-GCM parameters (the IV is made by the worker for `SEAL_GCM`, read from the input for `OPEN_GCM`). */
  gcm?: { iv?: Uint8Array; aad?: Uint8Array; tagBits: number };
  /** The key's object handle (none for digests). */
  key: Uint8Array | null;
  /** The input. */
  input: Uint8Array;
  /** The signature, for verify kinds. */
  signature?: Uint8Array;
  /** The output buffer size the worker reserves. */
  outLength: number;
}

/** A job's result: bytes, a verify answer, or an error. */
export type WireResult = { ok: true; value: Uint8Array<ArrayBuffer> | boolean } | {
  ok: false;
  error: unknown;
};

/** A {@link CryptoEngine} that owns threads: close it to end them. */
export interface WorkerEngine extends CryptoEngine {
  /** Calls on one session may be queued together: they run in order on one thread. */
  readonly batching: true;
  /** Worker threads. */
  readonly threads: number;
  /**
   * Runs `jobs` on `session` in order, on one thread, as one message; calls
   * `done` with every result (in job order) when the batch is back.
   */
  runBatch(
    session: SessionHandle,
    jobs: WireJob[],
    done: (results: WireResult[], busyUs: number) => void,
  ): void;
  /**
   * Ends the workers once each has attached to the module (so none can
   * initialise it after its owner finalised it); calls still in flight fail
   * with an {@link HsmError}.
   */
  close(): Promise<void>;
}

/** Packs jobs into the wire format (one record array, one byte buffer). */
function pack(batch: number, sessions: Buffer[], jobs: WireJob[]): JobBatch {
  let total = 0;
  for (let i = 0; i < jobs.length; i++) {
    const job = jobs[i];
    total += sessions[i].length + (job.key?.length ?? 0) + job.input.length +
      (job.signature?.length ?? 0) + (job.gcm?.iv?.length ?? 0) + (job.gcm?.aad?.length ?? 0);
  }
  const records = new Uint32Array(jobs.length * JOB_WORDS);
  const bytes = new Uint8Array(total);
  let pos = 0;
  const put = (b: Uint8Array | null | undefined, at: number, w: number) => {
    const len = b?.length ?? 0;
    records[at + w] = pos;
    records[at + w + 1] = len;
    if (len > 0) bytes.set(b!, pos);
    pos += len;
  };
  for (let i = 0; i < jobs.length; i++) {
    const job = jobs[i];
    const at = i * JOB_WORDS;
    records[at + J.id] = i;
    records[at + J.kind] = job.kind;
    records[at + J.mechanism] = job.mechanism;
    if (job.gcm !== undefined) {
      records[at + J.paramType] = 1;
      records[at + J.tagBits] = job.gcm.tagBits;
    }
    put(sessions[i], at, J.sessionOff);
    put(job.key, at, J.keyOff);
    put(job.gcm?.iv, at, J.ivOff);
    put(job.gcm?.aad, at, J.aadOff);
    put(job.input, at, J.inOff);
    put(job.signature, at, J.sigOff);
    records[at + J.outLen] = job.outLength;
  }
  return { batch, jobs: records, bytes };
}

/** Reads a worker's answer back into results, in job order. */
function unpack(jobs: WireJob[], { results, bytes, messages }: ResultBatch): WireResult[] {
  const out: WireResult[] = new Array(jobs.length);
  for (let i = 0; i < jobs.length; i++) {
    const r = i * RESULT_WORDS;
    const status = results[r + R.status];
    if (status === OK_BYTES) {
      const off = results[r + R.outOff];
      out[i] = { ok: true, value: bytes.subarray(off, off + results[r + R.outLen]) };
    } else if (status <= 2) {
      out[i] = { ok: true, value: status === OK_TRUE };
    } else {
      const kind = jobs[i].kind;
      const step = status === FAILED_INIT ? INIT[kind] : OPERATION[kind];
      const code = results[r + R.code];
      out[i] = {
        ok: false,
        error: toHsmError(code ? { code, message: "" } : new Error(messages[i]), step),
      };
    }
  }
  return out;
}

interface Posted {
  jobs: WireJob[];
  done: (results: WireResult[], busyUs: number) => void;
}

interface QueuedCall {
  session: Buffer;
  job: WireJob;
  resolve: (value: Uint8Array<ArrayBuffer> | boolean) => void;
  reject: (error: unknown) => void;
}

class Thread {
  readonly worker: Worker;
  /** Jobs (counted one by one) that are posted or queued and not answered yet. */
  inFlight = 0;
  /** Per-call jobs waiting for the end of this turn of the event loop. */
  calls: QueuedCall[] = [];
  scheduled = false;
  broken: Error | undefined;
  /** Resolves once the worker has attached to the module (or failed to). */
  readonly ready: Promise<void>;
  readonly #posted = new Map<number, Posted>();
  #nextBatch = 1;
  #ready: () => void;

  constructor(library: string) {
    this.worker = new Worker(new URL("./dispatch_worker.ts", import.meta.url), { type: "module" });
    const { promise, resolve } = Promise.withResolvers<void>();
    this.ready = promise;
    this.#ready = resolve;
    this.worker.postMessage({ library });
    this.worker.onmessage = (event) => {
      const data = event.data;
      if ("ready" in data) {
        if (!data.ready) {
          this.fail(new Error("the PKCS#11 module was not initialised when the worker started"));
        }
        this.#ready();
        return;
      }
      const posted = this.#posted.get(data.batch);
      if (posted === undefined) return;
      this.#posted.delete(data.batch);
      this.inFlight -= posted.jobs.length;
      posted.done(unpack(posted.jobs, data), data.busyUs);
    };
    this.worker.onerror = (event) => {
      event.preventDefault();
      this.fail(event.error ?? new Error(event.message));
      this.#ready();
    };
  }

  /** Posts jobs (each with its session) as one message. */
  post(
    sessions: Buffer[],
    jobs: WireJob[],
    done: (results: WireResult[], busyUs: number) => void,
  ): void {
    if (this.broken) {
      done(jobs.map(() => ({ ok: false, error: failed(this.broken) })), 0);
      return;
    }
    const batch = this.#nextBatch++;
    const message = pack(batch, sessions, jobs);
    this.#posted.set(batch, { jobs, done });
    this.inFlight += jobs.length;
    this.worker.postMessage(message, [message.jobs.buffer, message.bytes.buffer]);
  }

  /** Sends this turn's per-call jobs as one message. */
  flush = (): void => {
    this.scheduled = false;
    const calls = this.calls;
    this.calls = [];
    try {
      this.post(calls.map((c) => c.session), calls.map((c) => c.job), (results) => {
        for (let i = 0; i < calls.length; i++) {
          const r = results[i];
          if (r.ok) calls[i].resolve(r.value);
          else calls[i].reject(r.error);
        }
      });
    } catch (error) {
      for (const call of calls) call.reject(error);
    }
  };

  /** Fails everything in flight (the worker died or the engine closed). */
  fail(error: Error): void {
    this.broken ??= error;
    for (const posted of this.#posted.values()) {
      posted.done(posted.jobs.map(() => ({ ok: false, error: failed(error) })), 0);
    }
    this.#posted.clear();
    this.inFlight = 0;
  }
}

function failed(cause: unknown): HsmError {
  return new HsmError("HSM worker thread failed", { operation: "dispatch", cause });
}

/**
 * One core stays with the main thread (it packs and answers every batch);
 * measured on 2 cores, a second worker only added SoftHSM lock contention.
 */
const defaultThreads = () => Math.min(4, Math.max(1, (navigator.hardwareConcurrency ?? 2) - 1));

/**
 * Starts the worker threads and returns an engine that runs every crypto
 * call on them. `openHsm({ engine: "workers" })` makes one and closes it
 * with the handle; pass your own to share threads between handles.
 */
export function createWorkerEngine(options: WorkerEngineOptions): WorkerEngine {
  const count = options.threads ?? defaultThreads();
  if (!Number.isInteger(count) || count < 1 || count > 64) {
    throw new RangeError(`threads must be a whole number from 1 to 64, got ${count}`);
  }
  let closed = false;
  const threads: Thread[] = [];
  for (let i = 0; i < count; i++) threads.push(new Thread(options.library));
  const affinity = new WeakMap<SessionHandle, { thread: Thread; jobs: number }>();

  /**
   * The thread for a session's next jobs: the one it already has jobs on
   * (they must run in order, never two at a time), else the least busy.
   */
  const claim = (session: SessionHandle, jobs: number): { thread: Thread; jobs: number } => {
    let held = affinity.get(session);
    if (held === undefined || held.jobs === 0) {
      let thread = threads[0];
      for (let i = 1; i < threads.length; i++) {
        if (threads[i].inFlight < thread.inFlight) thread = threads[i];
      }
      held = { thread, jobs: 0 };
      affinity.set(session, held);
    }
    held.jobs += jobs;
    return held;
  };

  const closedError = () => new HsmError("the worker engine is closed", { operation: "dispatch" });

  /** One PKCS#11 call for the {@link CryptoEngine} methods. */
  const call = (
    session: SessionHandle,
    job: WireJob,
  ): Promise<Uint8Array<ArrayBuffer> | boolean> => {
    if (closed) return Promise.reject(closedError());
    const handle = session.handle; // throws if the session is closed
    const held = claim(session, 1);
    const { promise, resolve, reject } = Promise.withResolvers<Uint8Array<ArrayBuffer> | boolean>();
    const thread = held.thread;
    thread.calls.push({
      session: handle,
      job,
      resolve: (value) => {
        held.jobs--;
        resolve(value);
      },
      reject: (error) => {
        held.jobs--;
        reject(error);
      },
    });
    if (!thread.scheduled) {
      thread.scheduled = true;
      queueMicrotask(thread.flush);
    }
    return promise;
  };

  const gcmOf = (m: pkcs11js.Mechanism) => {
    const param = m.parameter as
      | { type?: number; iv?: Uint8Array; aad?: Uint8Array; tagBits?: number }
      | undefined;
    if (param === undefined) return undefined;
    if (param.type !== pkcs11js.CK_PARAMS_AES_GCM) {
      throw new TypeError("the worker engine carries no mechanism parameters but AES-GCM's");
    }
    return { iv: param.iv, aad: param.aad, tagBits: param.tagBits ?? 128 };
  };

  return {
    name: `workers(${count})`,
    batching: true,
    threads: count,
    encrypt: (s, m, key, input, outLength) =>
      call(s, {
        kind: ENCRYPT,
        mechanism: m.mechanism,
        gcm: gcmOf(m),
        key,
        input,
        outLength,
      }) as Promise<Uint8Array<ArrayBuffer>>,
    decrypt: (s, m, key, input, outLength) =>
      call(s, {
        kind: DECRYPT,
        mechanism: m.mechanism,
        gcm: gcmOf(m),
        key,
        input,
        outLength,
      }) as Promise<Uint8Array<ArrayBuffer>>,
    sign: (s, m, key, input, outLength) =>
      call(s, { kind: SIGN, mechanism: m.mechanism, key, input, outLength }) as Promise<
        Uint8Array<ArrayBuffer>
      >,
    verify: (s, m, key, input, signature) =>
      call(s, {
        kind: VERIFY,
        mechanism: m.mechanism,
        key,
        input,
        signature,
        outLength: 0,
      }) as Promise<boolean>,
    digest: (s, m, input, outLength) =>
      call(s, { kind: DIGEST, mechanism: m.mechanism, key: null, input, outLength }) as Promise<
        Uint8Array<ArrayBuffer>
      >,
    runBatch(session, jobs, done) {
      if (closed) {
        done(jobs.map(() => ({ ok: false, error: closedError() })), 0);
        return;
      }
      let handle: Buffer;
      try {
        handle = session.handle;
      } catch (error) {
        done(jobs.map(() => ({ ok: false, error: error as HsmError })), 0);
        return;
      }
      const held = claim(session, jobs.length);
      held.thread.post(jobs.map(() => handle), jobs, (results, busyUs) => {
        held.jobs -= jobs.length;
        done(results, busyUs);
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      // A worker still starting would attach (C_Initialize) after we are
      // gone: wait until each has, then end them.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 10_000);
        Deno.unrefTimer(timer);
        Promise.all(threads.map((t) => t.ready)).then(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      for (const thread of threads) {
        thread.worker.terminate();
        thread.fail(new Error("engine closed"));
      }
    },
  };
}

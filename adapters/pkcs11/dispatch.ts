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

const INIT = ["C_EncryptInit", "C_DecryptInit", "C_SignInit", "C_VerifyInit", "C_DigestInit"];

/** Options of {@link createWorkerEngine}. */
export interface WorkerEngineOptions {
  /** The module's path (each worker loads its own binding). */
  library: string;
  /** Worker threads. Default: the number of cores, at most 4. */
  threads?: number;
}

/** A {@link CryptoEngine} that owns threads: close it to end them. */
export interface WorkerEngine extends CryptoEngine {
  /** Calls on one session may be queued together: they run in order on one thread. */
  readonly batching: true;
  /** Worker threads. */
  readonly threads: number;
  /**
   * Ends the workers once each has attached to the module (so none can
   * initialise it after its owner finalised it); calls still in flight fail
   * with an {@link HsmError}.
   */
  close(): Promise<void>;
}

type Settled = Uint8Array<ArrayBuffer> | boolean;

/** One queued call: its fields stay references until the batch is packed. */
interface Job {
  id: number;
  kind: number;
  session: Buffer;
  mechanism: pkcs11js.Mechanism;
  key: Buffer | null;
  input: Uint8Array;
  signature: Uint8Array | null;
  outLength: number;
  resolve: (value: Settled) => void;
  reject: (error: unknown) => void;
}

/** Packs queued jobs into the wire format (one record array, one byte buffer). */
function pack(jobs: Job[]): JobBatch {
  let total = 0;
  for (const job of jobs) {
    const param = job.mechanism.parameter as { iv?: Uint8Array; aad?: Uint8Array } | undefined;
    total += job.session.length + (job.key?.length ?? 0) + job.input.length +
      (job.signature?.length ?? 0) + (param?.iv?.length ?? 0) + (param?.aad?.length ?? 0);
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
    const param = job.mechanism.parameter as
      | { type?: number; iv?: Uint8Array; aad?: Uint8Array; tagBits?: number }
      | undefined;
    records[at + J.id] = job.id;
    records[at + J.kind] = job.kind;
    records[at + J.mechanism] = job.mechanism.mechanism;
    if (param !== undefined) {
      if (param.type !== pkcs11js.CK_PARAMS_AES_GCM) {
        throw new TypeError("the worker engine carries no mechanism parameters but AES-GCM's");
      }
      records[at + J.paramType] = 1;
      records[at + J.tagBits] = param.tagBits ?? 128;
    }
    put(job.session, at, J.sessionOff);
    put(job.key, at, J.keyOff);
    put(param?.iv, at, J.ivOff);
    put(param?.aad, at, J.aadOff);
    put(job.input, at, J.inOff);
    put(job.signature, at, J.sigOff);
    records[at + J.outLen] = job.outLength;
  }
  return { jobs: records, bytes };
}

class Thread {
  readonly worker: Worker;
  queue: Job[] = [];
  inFlight = 0;
  scheduled = false;
  readonly pending = new Map<number, Job>();

  /** Resolves once the worker has attached to the module (or failed to). */
  readonly ready: Promise<void>;
  #ready: () => void;
  broken: Error | undefined;

  constructor(library: string, onCrash: (thread: Thread, error: unknown) => void) {
    this.worker = new Worker(new URL("./dispatch_worker.ts", import.meta.url), { type: "module" });
    const { promise, resolve } = Promise.withResolvers<void>();
    this.ready = promise;
    this.#ready = resolve;
    this.worker.postMessage({ library });
    this.worker.onmessage = (event) => {
      if ("ready" in event.data) {
        if (!event.data.ready) {
          this.broken = new Error("the PKCS#11 module was not initialised when the worker started");
          onCrash(this, this.broken);
        }
        this.#ready();
        return;
      }
      this.#settle(event.data);
    };
    this.worker.onerror = (event) => {
      event.preventDefault();
      this.broken = event.error ?? new Error(event.message);
      onCrash(this, this.broken);
      this.#ready();
    };
  }

  flush = (): void => {
    this.scheduled = false;
    const jobs = this.queue;
    this.queue = [];
    let batch: JobBatch;
    try {
      batch = pack(jobs);
    } catch (error) {
      for (const job of jobs) this.#finish(job).reject(error);
      return;
    }
    this.worker.postMessage(batch, [batch.jobs.buffer, batch.bytes.buffer]);
  };

  #finish(job: Job): Job {
    this.pending.delete(job.id);
    this.inFlight--;
    return job;
  }

  #settle({ results, bytes, messages }: ResultBatch): void {
    const count = results.length / RESULT_WORDS;
    for (let i = 0; i < count; i++) {
      const r = i * RESULT_WORDS;
      const job = this.pending.get(results[r + R.id]);
      if (job === undefined) continue;
      this.#finish(job);
      const status = results[r + R.status];
      if (status === OK_BYTES) {
        const off = results[r + R.outOff];
        job.resolve(bytes.subarray(off, off + results[r + R.outLen]));
      } else if (status <= 2) {
        job.resolve(status === OK_TRUE);
      } else {
        const step = status === FAILED_INIT ? INIT[job.kind] : OPERATION[job.kind];
        const code = results[r + R.code];
        job.reject(toHsmError(code ? { code, message: "" } : new Error(messages[i]), step));
      }
    }
  }
}

const defaultThreads = () => Math.min(4, Math.max(1, navigator.hardwareConcurrency ?? 2));

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
  let nextId = 1;
  let closed = false;
  const threads: Thread[] = [];
  const sessionThreads = new WeakMap<SessionHandle, { thread: Thread; calls: number }>();
  const crash = (thread: Thread, error: unknown) => {
    for (const job of thread.pending.values()) {
      job.reject(new HsmError("HSM worker thread failed", { operation: "dispatch", cause: error }));
    }
    thread.pending.clear();
    thread.inFlight = 0;
  };
  for (let i = 0; i < count; i++) threads.push(new Thread(options.library, crash));

  const submit = (
    kind: number,
    session: SessionHandle,
    mechanism: pkcs11js.Mechanism,
    key: Buffer | null,
    input: Uint8Array,
    signature: Uint8Array | null,
    outLength: number,
  ): Promise<Settled> => {
    if (closed) {
      return Promise.reject(new HsmError("the worker engine is closed", { operation: "dispatch" }));
    }
    const handle = session.handle; // throws if the session is closed
    // Calls queued on one session stay on one thread, where they run in
    // order; a session with nothing in flight goes to the least busy thread.
    let affinity = sessionThreads.get(session);
    if (affinity === undefined || affinity.calls === 0) {
      let thread = threads[0];
      for (let i = 1; i < threads.length; i++) {
        if (threads[i].inFlight < thread.inFlight) thread = threads[i];
      }
      affinity = { thread, calls: 0 };
      sessionThreads.set(session, affinity);
    }
    const held = affinity;
    const thread = held.thread;
    if (thread.broken) {
      return Promise.reject(
        new HsmError("HSM worker thread failed", { operation: "dispatch", cause: thread.broken }),
      );
    }
    held.calls++;
    const { promise, resolve, reject } = Promise.withResolvers<Settled>();
    const job: Job = {
      id: nextId++,
      kind,
      session: handle,
      mechanism,
      key,
      input,
      signature,
      outLength,
      resolve: (value) => {
        held.calls--;
        resolve(value);
      },
      reject: (error) => {
        held.calls--;
        reject(error);
      },
    };
    thread.pending.set(job.id, job);
    thread.inFlight++;
    thread.queue.push(job);
    if (!thread.scheduled) {
      thread.scheduled = true;
      queueMicrotask(thread.flush);
    }
    return promise;
  };

  return {
    name: `workers(${count})`,
    batching: true,
    threads: count,
    encrypt: (s, m, key, input, outLength) =>
      submit(ENCRYPT, s, m, key, input, null, outLength) as Promise<Uint8Array<ArrayBuffer>>,
    decrypt: (s, m, key, input, outLength) =>
      submit(DECRYPT, s, m, key, input, null, outLength) as Promise<Uint8Array<ArrayBuffer>>,
    sign: (s, m, key, input, outLength) =>
      submit(SIGN, s, m, key, input, null, outLength) as Promise<Uint8Array<ArrayBuffer>>,
    verify: (s, m, key, input, signature) =>
      submit(VERIFY, s, m, key, input, signature, 0) as Promise<boolean>,
    digest: (s, m, input, outLength) =>
      submit(DIGEST, s, m, null, input, null, outLength) as Promise<Uint8Array<ArrayBuffer>>,
    async close() {
      if (closed) return;
      closed = true;
      // A worker still starting would attach (C_Initialize) after we are
      // gone: wait until each has, then end them.
      const timeout = new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 10_000);
        Deno.unrefTimer(timer);
        Promise.all(threads.map((t) => t.ready)).then(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      await timeout;
      for (const thread of threads) {
        thread.worker.terminate();
        crash(thread, new Error("engine closed"));
      }
    },
  };
}

/**
 * {@link Thread}: one worker thread of the worker engine (`dispatch.ts`)
 * and the batches posted to it, answered in one message each.
 *
 * @module
 */
import type { Buffer } from "node:buffer";
import { HsmError } from "./errors.ts";
import { pack, unpack, type WireJob, type WireResult } from "./dispatch_wire.ts";

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

/** One worker thread and the batches posted to it. */
export class Thread {
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
  #drained: (() => void) | undefined;

  constructor(library: string) {
    this.worker = new Worker(new URL("./dispatch_worker.ts", import.meta.url), { type: "module" });
    const { promise, resolve } = Promise.withResolvers<void>();
    this.ready = promise;
    this.#ready = resolve;
    this.worker.postMessage({ library });
    this.worker.onmessage = (event) => this.#answer(event.data);
    this.worker.onerror = (event) => {
      event.preventDefault();
      this.fail(event.error ?? new Error(event.message));
      this.#ready();
    };
  }

  #answer(data: { ready?: boolean; batch: number; busyUs: number }): void {
    if ("ready" in data) {
      if (!data.ready) {
        this.fail(new Error("the PKCS#11 module was not initialised when the worker started"));
      }
      return this.#ready();
    }
    const posted = this.#posted.get(data.batch);
    if (posted === undefined) return;
    this.#posted.delete(data.batch);
    this.inFlight -= posted.jobs.length;
    if (this.#posted.size === 0) this.#drained?.();
    posted.done(unpack(posted.jobs, data as never), data.busyUs);
  }

  /** Resolves when no batch is out on this thread (or after `limitMs`). */
  drained(limitMs: number): Promise<void> {
    if (this.#posted.size === 0) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    const timer = setTimeout(resolve, limitMs);
    this.#drained = () => {
      clearTimeout(timer);
      resolve();
    };
    return promise;
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
    const posted = [...this.#posted.values()];
    this.#posted.clear();
    this.inFlight = 0;
    this.#drained?.();
    for (const p of posted) p.done(p.jobs.map(() => ({ ok: false, error: failed(error) })), 0);
  }
}

export function failed(cause: unknown): HsmError {
  return new HsmError("HSM worker thread failed", { operation: "dispatch", cause });
}

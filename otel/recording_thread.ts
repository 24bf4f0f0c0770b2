/**
 * Where the pool's timings are recorded into OpenTelemetry. With Deno's
 * built-in exporter (`OTEL_DENO=true`), on a thread of their own: Deno's
 * metrics are process-wide, so values recorded on another thread are exported
 * with the rest, and the 0.3–0.7 µs that each `Histogram.record()` costs in
 * Deno 2.9 is not spent on the event loop (pino moves its log transports off
 * the main thread for the same reason). With any other meter provider (an
 * SDK set up in this thread, or the no-op one), or when the thread cannot
 * start (no `--allow-read` for its module), on this thread.
 *
 * @module
 */

import { metrics } from "@opentelemetry/api";
import { Worker } from "node:worker_threads";
import { JobReplayer, type Recorder, type RecordingJob } from "./recording_job.ts";

/** How long a collection waits for the recording thread before exporting what it has. */
const SETTLE_WAIT_MS = 1_000;
/** How long the exit flush blocks, at most, for the recording thread. */
const SETTLE_AT_EXIT_MS = 2_000;

/** Records on this thread, through the global meter provider. */
export class LocalRecorder implements Recorder {
  readonly #replayer = new JobReplayer();

  /** {@inheritDoc Recorder.record} */
  record(jobs: RecordingJob[]): void {
    this.#replayer.replay(jobs);
  }
  /** {@inheritDoc Recorder.settled} */
  settled(): Promise<void> {
    return Promise.resolve();
  }
  /** {@inheritDoc Recorder.settleNow} */
  settleNow(): void {}
}

/**
 * Records on a worker thread that does not keep the process alive. If the
 * thread fails, what it had not confirmed, and everything after, is recorded
 * here instead: nothing is lost, nothing is recorded twice.
 */
export class ThreadRecorder implements Recorder {
  readonly #worker: Worker;
  readonly #done = new Int32Array(new SharedArrayBuffer(4));
  readonly #unconfirmed = new Map<number, RecordingJob[]>();
  readonly #waiting: { seq: number; resolve: () => void }[] = [];
  #local: LocalRecorder | undefined;
  #seq = 0;

  constructor() {
    this.#worker = new Worker(new URL("./recording_worker.ts", import.meta.url));
    this.#worker.unref();
    this.#worker.postMessage({ done: this.#done.buffer });
    this.#worker.on("message", (seq: number) => this.#confirmed(seq));
    this.#worker.on("error", () => this.#fail());
    this.#worker.on("exit", () => this.#fail());
    // What stopped pools handed over last must be recorded before Deno's exit flush.
    globalThis.addEventListener("unload", () => this.settleNow());
  }

  /** {@inheritDoc Recorder.record} */
  record(jobs: RecordingJob[]): void {
    if (jobs.length === 0) return;
    if (this.#local !== undefined) return this.#local.record(jobs);
    const seq = ++this.#seq;
    this.#unconfirmed.set(seq, jobs);
    this.#worker.postMessage({ seq, jobs });
  }

  /** {@inheritDoc Recorder.settled} */
  settled(): Promise<void> {
    if (this.#unconfirmed.size === 0) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    const timer = setTimeout(resolve, SETTLE_WAIT_MS);
    Deno.unrefTimer(timer);
    this.#waiting.push({
      seq: this.#seq,
      resolve: () => {
        clearTimeout(timer);
        resolve();
      },
    });
    return promise;
  }

  /** {@inheritDoc Recorder.settleNow} */
  settleNow(): void {
    const deadline = performance.now() + SETTLE_AT_EXIT_MS;
    let done = Atomics.load(this.#done, 0);
    while (this.#local === undefined && done < this.#seq) {
      const left = deadline - performance.now();
      if (left <= 0) return;
      Atomics.wait(this.#done, 0, done, left);
      done = Atomics.load(this.#done, 0);
    }
    this.#confirmed(done);
  }

  #confirmed(seq: number): void {
    for (const key of this.#unconfirmed.keys()) if (key <= seq) this.#unconfirmed.delete(key);
    while (this.#waiting.length > 0 && this.#waiting[0].seq <= seq) {
      this.#waiting.shift()!.resolve();
    }
  }

  /** The thread is gone: record here what it had not confirmed, and from now on. */
  #fail(): void {
    if (this.#local !== undefined) return;
    const local = (this.#local = new LocalRecorder());
    this.#confirmed(Atomics.load(this.#done, 0));
    for (const jobs of this.#unconfirmed.values()) local.record(jobs);
    this.#unconfirmed.clear();
    for (const w of this.#waiting.splice(0)) w.resolve();
  }
}

let shared: Recorder | undefined;

/** Whether the global meter provider is Deno's built-in one (`OTEL_DENO=true`). */
function denoExporterIsGlobal(): boolean {
  const telemetry = (Deno as unknown as { telemetry?: { meterProvider?: unknown } }).telemetry;
  return telemetry?.meterProvider !== undefined &&
    telemetry.meterProvider === metrics.getMeterProvider();
}

/**
 * The recorder for the current meter provider: one recording thread for the
 * whole process with Deno's built-in exporter, this thread otherwise.
 */
export function recorderForGlobalProvider(): Recorder {
  if (!denoExporterIsGlobal()) return new LocalRecorder();
  if (shared === undefined) {
    try {
      shared = new ThreadRecorder();
    } catch {
      // No thread without read access to its module (`--allow-read`): record here instead.
      shared = new LocalRecorder();
    }
  }
  return shared;
}

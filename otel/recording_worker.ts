/**
 * The recording thread's body (see `recording_thread.ts`): records each job's
 * values into Deno's built-in OpenTelemetry, which every thread of the
 * process shares, then counts the message as done in shared memory (so that
 * the main thread can wait for it even at exit) and answers with its number.
 *
 * @module
 */

import { type Histogram, metrics } from "@opentelemetry/api";
import { parentPort } from "node:worker_threads";
import { replay } from "./histogram_delta.ts";
import type { RecordingJob } from "./recording_job.ts";

const histograms = new Map<string, Histogram>();

function histogramFor({ spec }: RecordingJob): Histogram {
  let histogram = histograms.get(spec.name);
  if (histogram === undefined) {
    histogram = metrics.getMeter(spec.meter).createHistogram(spec.name, {
      unit: spec.unit,
      description: spec.description,
      advice: { explicitBucketBoundaries: spec.boundsS },
    });
    histograms.set(spec.name, histogram);
  }
  return histogram;
}

let done: Int32Array | undefined;

parentPort!.on(
  "message",
  (message: { done: SharedArrayBuffer } | { seq: number; jobs: RecordingJob[] }) => {
    if ("done" in message) {
      done = new Int32Array(message.done);
      return;
    }
    for (const job of message.jobs) replay(job.plan, histogramFor(job), job.attributes);
    Atomics.store(done!, 0, message.seq);
    Atomics.notify(done!, 0);
    parentPort!.postMessage(message.seq);
  },
);

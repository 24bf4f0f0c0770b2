/**
 * The recording thread's body (see `recording_thread.ts`): records each job's
 * values into Deno's built-in OpenTelemetry, which every thread of the
 * process shares, then counts the message as done in shared memory (so that
 * the main thread can wait for it even at exit) and answers with its number.
 *
 * @module
 */

import { parentPort } from "node:worker_threads";
import { JobReplayer, type RecordingJob } from "./recording_job.ts";

const replayer = new JobReplayer();

let done: Int32Array | undefined;

parentPort!.on(
  "message",
  (message: { done: SharedArrayBuffer } | { seq: number; jobs: RecordingJob[] }) => {
    if ("done" in message) {
      done = new Int32Array(message.done);
      return;
    }
    replayer.replay(message.jobs);
    Atomics.store(done!, 0, message.seq);
    Atomics.notify(done!, 0);
    parentPort!.postMessage(message.seq);
  },
);

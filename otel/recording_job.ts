/**
 * What is handed to a {@link Recorder}: values to record into one histogram,
 * described by plain data so that it can cross to the recording thread.
 *
 * @module
 */

import { type Attributes, type Histogram, metrics } from "@opentelemetry/api";
import { type RecordingPlan, replay } from "./histogram_delta.ts";

/** A histogram instrument, as data: the meter it belongs to and how it is created. */
export interface HistogramSpec {
  /** The meter (instrumentation scope) name. */
  meter: string;
  /** The instrument's name. */
  name: string;
  /** Its unit. */
  unit: string;
  /** Its description. */
  description: string;
  /** Its explicit bucket boundaries (seconds). */
  boundsS: number[];
}

/** Values to record into one histogram, with these attributes. */
export interface RecordingJob {
  /** The histogram. */
  spec: HistogramSpec;
  /** The attributes of every value. */
  attributes: Attributes;
  /** The values and how many times each. */
  plan: RecordingPlan;
}

/** Where jobs are recorded: on this thread, or on the recording thread. */
export interface Recorder {
  /** Records `jobs`, now or soon, in order. */
  record(jobs: RecordingJob[]): void;
  /** Resolves once every job handed over so far is recorded (or after a bounded wait). */
  settled(): Promise<void>;
  /** Blocks until every job handed over so far is recorded, for at most a bounded time (exit). */
  settleNow(): void;
}

/**
 * Records jobs through the global meter provider of the thread it runs on,
 * creating each histogram once.
 */
export class JobReplayer {
  readonly #histograms = new Map<string, Histogram>();

  /** Records every value of `jobs`, in order. */
  replay(jobs: readonly RecordingJob[]): void {
    for (const job of jobs) replay(job.plan, this.#histogramFor(job.spec), job.attributes);
  }

  #histogramFor(spec: HistogramSpec): Histogram {
    let histogram = this.#histograms.get(spec.name);
    if (histogram === undefined) {
      histogram = metrics.getMeter(spec.meter).createHistogram(spec.name, {
        unit: spec.unit,
        description: spec.description,
        advice: { explicitBucketBoundaries: spec.boundsS },
      });
      this.#histograms.set(spec.name, histogram);
    }
    return histogram;
  }
}

import type { HistogramSnapshot } from "./types.ts";

/** Histogram bucket bounds for acquire wait, create time and use time, in milliseconds. */
export const WAIT_BUCKETS_MS: readonly number[] = [
  1, // the pool's clock has 1 ms resolution (see clock.ts), so no finer bucket
  5,
  10,
  25,
  50,
  100,
  250,
  500,
  1_000,
  2_500,
  5_000,
  10_000,
  30_000,
];

const WINDOW = 1024; // recent waits kept for percentiles; a power of two

/**
 * A cumulative duration histogram since the start (the shape Prometheus
 * wants): a bucket count per bound, the count and the sum; also the sum per
 * bucket and the min and max, so that an exporter can replay it exactly
 * (OpenTelemetry's histograms carry min and max).
 */
export class DurationHistogram {
  // Per bucket, the last one above every bound: count and sum.
  readonly #perBucket = new Float64Array(WAIT_BUCKETS_MS.length + 1);
  readonly #sumPerBucket = new Float64Array(WAIT_BUCKETS_MS.length + 1);
  #count = 0;
  #sumMs = 0;
  #minMs = Infinity;
  #maxMs = -Infinity;

  /** Records one duration. */
  record(ms: number): void {
    this.#count++;
    this.#sumMs += ms;
    if (ms < this.#minMs) this.#minMs = ms;
    if (ms > this.#maxMs) this.#maxMs = ms;
    let i = 0;
    while (i < WAIT_BUCKETS_MS.length && ms > WAIT_BUCKETS_MS[i]) i++;
    this.#perBucket[i]++;
    this.#sumPerBucket[i] += ms;
  }

  /** The cumulative histogram since the start. */
  snapshot(): HistogramSnapshot {
    let running = 0;
    const counts = WAIT_BUCKETS_MS.map((_, i) => (running += this.#perBucket[i]));
    const empty = this.#count === 0;
    return {
      bucketsMs: WAIT_BUCKETS_MS,
      counts,
      count: this.#count,
      sumMs: this.#sumMs,
      sumsMs: Array.from(this.#sumPerBucket),
      minMs: empty ? 0 : this.#minMs,
      maxMs: empty ? 0 : this.#maxMs,
    };
  }
}

/**
 * Records how long each acquire waited: a window of the recent waits for
 * percentiles and a cumulative histogram since the start for metrics.
 * Recording is a few array writes, cheap enough for the acquire fast path.
 */
export class WaitStats {
  #recent = new Float64Array(WINDOW);
  #count = 0;
  readonly #histogram = new DurationHistogram();

  /** Records one acquire's wait. */
  record(ms: number): void {
    this.#recent[this.#count & (WINDOW - 1)] = ms;
    this.#count++;
    this.#histogram.record(ms);
  }

  /** p50, p99 and max over the recent window. */
  percentiles(): { p50: number; p99: number; max: number } {
    const n = Math.min(this.#count, WINDOW);
    if (n === 0) return { p50: 0, p99: 0, max: 0 };
    const sorted = this.#recent.slice(0, n).sort();
    const at = (q: number) => sorted[Math.min(n - 1, Math.ceil(q * n) - 1)];
    return { p50: at(0.5), p99: at(0.99), max: sorted[n - 1] };
  }

  /** The cumulative histogram since the start. */
  histogram(): HistogramSnapshot {
    return this.#histogram.snapshot();
  }
}

/**
 * Collects durations on the pool's hot path with a few arithmetic operations
 * and hands them to an OpenTelemetry histogram later, in one batch.
 *
 * Why: in Deno 2.9 a `Histogram.record(value, attributes)` is an op call that
 * converts the attributes in Rust, about 0.3 to 0.5 µs, as much as a whole
 * acquire+release of an idle resource. So the acquire/release path only
 * counts here, per bucket, and {@link TimingBuffer.flushTo} replays the
 * bucket contents when metrics are collected (and at exit), such that the
 * exported histogram is exactly the one direct recording would give: same
 * count, sum, bucket counts, min and max.
 *
 * @module
 */

/** What {@link TimingBuffer.flushTo} records into (an OpenTelemetry `Histogram`). */
export interface HistogramSink<A> {
  /** Records one value with its attributes. */
  record(value: number, attributes: A): void;
}

/**
 * Durations in milliseconds, grouped by the histogram's bucket bounds, waiting
 * to be recorded in seconds.
 */
export class TimingBuffer {
  readonly #boundsMs: Float64Array;
  // Per bucket (the last one above every bound): count, sum, min, max.
  readonly #count: Float64Array;
  readonly #sum: Float64Array;
  readonly #min: Float64Array;
  readonly #max: Float64Array;
  #pending = 0;

  /** Buckets with these upper bounds (ms, ascending, inclusive, as OpenTelemetry's). */
  constructor(boundsMs: readonly number[]) {
    for (let i = 1; i < boundsMs.length; i++) {
      if (!(boundsMs[i] > boundsMs[i - 1])) {
        throw new RangeError(
          `TimingBuffer: bucket bounds must ascend strictly; got ${boundsMs.join(", ")}`,
        );
      }
    }
    this.#boundsMs = Float64Array.from(boundsMs);
    const n = boundsMs.length + 1;
    this.#count = new Float64Array(n);
    this.#sum = new Float64Array(n);
    this.#min = new Float64Array(n).fill(Infinity);
    this.#max = new Float64Array(n).fill(-Infinity);
  }

  /** Durations added since the last flush. */
  get pending(): number {
    return this.#pending;
  }

  /** Adds one duration (ms). The hot path: no allocation, no call out. */
  add(ms: number): void {
    const bounds = this.#boundsMs;
    let i = 0;
    while (i < bounds.length && ms > bounds[i]) i++;
    this.#count[i]++;
    this.#sum[i] += ms;
    if (ms < this.#min[i]) this.#min[i] = ms;
    if (ms > this.#max[i]) this.#max[i] = ms;
    this.#pending++;
  }

  /**
   * Records every pending duration into `sink`, in seconds, and empties the
   * buffer. Per bucket of n durations: its min, its max, and n-2 times the
   * mean of the others, so count, sum, min, max and the bucket all match.
   */
  flushTo<A>(sink: HistogramSink<A>, attributes: A): void {
    if (this.#pending === 0) return;
    for (let i = 0; i < this.#count.length; i++) {
      const n = this.#count[i];
      if (n === 0) continue;
      const min = this.#min[i];
      const max = this.#max[i];
      sink.record(min / 1000, attributes);
      if (n >= 2) sink.record(max / 1000, attributes);
      if (n > 2) {
        // Clamped: rounding must not push the mean out of [min, max], hence out of the bucket.
        const rest = Math.min(max, Math.max(min, (this.#sum[i] - min - max) / (n - 2))) / 1000;
        for (let k = 2; k < n; k++) sink.record(rest, attributes);
      }
      this.#count[i] = 0;
      this.#sum[i] = 0;
      this.#min[i] = Infinity;
      this.#max[i] = -Infinity;
    }
    this.#pending = 0;
  }
}

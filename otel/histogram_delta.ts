/**
 * Turns the growth of one of the pool's own cumulative histograms (a
 * {@link HistogramSnapshot} from `stats()`) into the values to record into an
 * OpenTelemetry histogram, so that the exported histogram is the one direct
 * recording would have given: the same count, sum, bucket counts, min and
 * max.
 *
 * Why: the pool already counts every wait, use and create per bucket, for
 * `stats()` and Prometheus. Reading that at collection time adds nothing to
 * the acquire/release path, whereas a `Histogram.record()` per acquire costs
 * more than the acquire itself in Deno 2.9 (see docs/metrics.md).
 *
 * @module
 */

import type { HistogramSnapshot } from "../pool/types.ts";

/**
 * What to record, in seconds: pairs of (value, how many times), flat. Most
 * buckets take one pair; a bucket holding a new min or max takes two or three.
 */
export type RecordingPlan = Float64Array;

/** Remembers what was already replayed of one growing histogram. */
export class HistogramDelta {
  #counts: number[] = [];
  #sums: number[] = [];
  #min = Infinity;
  #max = -Infinity;

  /**
   * The values that turn what was recorded up to the previous call into what
   * `snapshot` holds. Within a bucket, the durations are recorded at their
   * mean; the new min and max, when they changed, as themselves.
   */
  next(snapshot: HistogramSnapshot): RecordingPlan {
    const counts = perBucket(snapshot);
    const { sumsMs, minMs, maxMs } = snapshot;
    const pairs: number[] = [];
    const newMin = snapshot.count > 0 && minMs < this.#min;
    const newMax = snapshot.count > 0 && maxMs > this.#max;
    for (let i = 0; i < counts.length; i++) {
      let n = counts[i] - (this.#counts[i] ?? 0);
      if (n <= 0) continue;
      let sum = sumsMs[i] - (this.#sums[i] ?? 0);
      const lowMs = i === 0 ? -Infinity : snapshot.bucketsMs[i - 1];
      const highMs = i < snapshot.bucketsMs.length ? snapshot.bucketsMs[i] : Infinity;
      const holds = (ms: number) => ms > lowMs && ms <= highMs;
      if (newMin && holds(minMs)) {
        pairs.push(minMs / 1000, 1);
        n--;
        sum -= minMs;
      }
      if (newMax && holds(maxMs) && n > 0 && maxMs !== minMs) {
        pairs.push(maxMs / 1000, 1);
        n--;
        sum -= maxMs;
      }
      if (n > 0) {
        // Clamped: rounding must not push the mean past the bucket's top, the min or the max.
        const mean = Math.min(highMs, maxMs, Math.max(minMs, sum / n));
        pairs.push(mean / 1000, n);
      }
    }
    this.#counts = counts;
    this.#sums = sumsMs.slice();
    if (newMin) this.#min = minMs;
    if (newMax) this.#max = maxMs;
    return Float64Array.from(pairs);
  }
}

/** Counts per bucket, not cumulative, with the bucket above the last bound. */
function perBucket(snapshot: HistogramSnapshot): number[] {
  const out: number[] = [];
  let previous = 0;
  for (const cumulative of snapshot.counts) {
    out.push(cumulative - previous);
    previous = cumulative;
  }
  out.push(snapshot.count - previous);
  return out;
}

/** Records `plan` into `histogram` with `attributes`: one call per value. */
export function replay<A>(
  plan: RecordingPlan,
  histogram: { record(value: number, attributes: A): void },
  attributes: A,
): void {
  for (let p = 0; p < plan.length; p += 2) {
    const value = plan[p];
    for (let k = plan[p + 1]; k > 0; k--) histogram.record(value, attributes);
  }
}

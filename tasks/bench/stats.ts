/**
 * Order statistics for benchmark figures (medians across rounds, latency
 * percentiles across samples) and how figures print in tables and charts.
 * Plain arrays, no streaming sketches: a run holds at most a few million
 * samples.
 *
 * @module
 */

/** The percentiles every latency summary reports, as fractions. */
export const PERCENTILES = [0.5, 0.9, 0.99, 0.999] as const;

/** Latency percentiles and extremes of one set of samples, in milliseconds. */
export interface LatencySummary {
  /** Number of samples. */
  count: number;
  /** Median. */
  p50: number;
  /** 90th percentile. */
  p90: number;
  /** 99th percentile. */
  p99: number;
  /** 99.9th percentile. */
  p999: number;
  /** Largest sample. */
  max: number;
  /** Arithmetic mean. */
  mean: number;
}

/** The value at fraction `q` (0..1) of an ascending array, nearest-rank. */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil(q * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))];
}

/** The median of some numbers (the mean of the middle two for even counts). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Summarises latency samples (ms) into percentiles; sorts a copy. */
export function summarizeLatencies(samples: ArrayLike<number>): LatencySummary {
  const sorted = Float64Array.from(samples).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    count: sorted.length,
    p50: quantileSorted(sorted, 0.5),
    p90: quantileSorted(sorted, 0.9),
    p99: quantileSorted(sorted, 0.99),
    p999: quantileSorted(sorted, 0.999),
    max: sorted.length ? sorted[sorted.length - 1] : NaN,
    mean: sorted.length ? sum / sorted.length : NaN,
  };
}

/** A growable buffer of latency samples that avoids boxing numbers. */
export class SampleBuffer {
  #data = new Float64Array(1024);
  #length = 0;

  /** Appends one sample. */
  push(value: number): void {
    if (this.#length === this.#data.length) {
      const bigger = new Float64Array(this.#data.length * 2);
      bigger.set(this.#data);
      this.#data = bigger;
    }
    this.#data[this.#length++] = value;
  }

  /** The samples so far (a view, not a copy). */
  values(): Float64Array {
    return this.#data.subarray(0, this.#length);
  }

  /** Number of samples so far. */
  get length(): number {
    return this.#length;
  }
}

/** A figure with about three significant digits ("1.23", "45.6", "12,345"). */
export function fmt(value: number): string {
  if (!Number.isFinite(value)) return "n/a";
  const abs = Math.abs(value);
  if (abs >= 1000) return Math.round(value).toLocaleString("en-US");
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  return value.toPrecision(2);
}

/** A ratio: "0.42×". */
export function fmtRatio(value: number): string {
  return Number.isFinite(value) ? `${value >= 10 ? value.toFixed(0) : value.toFixed(2)}×` : "n/a";
}

/** A milliseconds figure with its unit, switching to µs below 1 ms. */
export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return "n/a";
  return ms < 1 ? `${fmt(ms * 1000)} µs` : `${fmt(ms)} ms`;
}

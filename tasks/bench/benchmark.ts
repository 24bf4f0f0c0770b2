/**
 * The shape of one benchmark (scenarios: what load; contenders: who runs it; targets: what
 * counts as good enough), the load generator every contender shares, the order statistics its
 * figures are reduced with and how figures print. `suite.ts` turns a {@link Benchmark} into
 * {@link BenchmarkResult}s.
 *
 * @module
 */

import type { Target, TargetResult } from "./targets.ts";

/** What one trial of one contender measured. */
export interface Trial {
  /** Operations completed. */
  ops: number;
  /** Wall time from the first operation started to the last finished (ms). */
  elapsedMs: number;
  /** Per-operation latencies (ms), when the benchmark records them. */
  latenciesMs?: ArrayLike<number>;
  /** Operations that failed, for contenders that count failures instead of stopping on one. */
  failures?: number;
}

/** One load shape, e.g. "SELECT 1, 50 callers". */
export interface Scenario {
  /** Short stable id used in JSON and file names. */
  id: string;
  /** What a reader sees in tables and charts. */
  label: string;
  /** Concurrent callers. */
  concurrency: number;
}

/** A contender opened for one scenario; closed when the scenario is done. */
export interface ContenderInstance {
  /** Runs operations for about `durationMs` and reports what it did. */
  trial(durationMs: number): Promise<Trial>;
  /** Releases everything the instance holds. */
  close(): Promise<void>;
}

/** Someone who runs the benchmark's work: our pool or an alternative. */
export interface Contender {
  /** Name shown in tables, charts and targets. */
  name: string;
  /** A one-line description printed under the table. */
  description: string;
  /** True for this project's contenders; the others are the alternatives ratios are taken against. */
  ours: boolean;
  /** Opens the contender for a scenario (create pool, warm connections...). */
  open(scenario: Scenario): Promise<ContenderInstance>;
}

/** The primary figure of a benchmark. */
export type PrimaryMetric = "usPerOp" | "opsPerSec";

/** A benchmark definition. */
export interface Benchmark {
  /** Stable id: file names and JSON keys. */
  id: string;
  /** Heading of its table. */
  title: string;
  /** One line printed before it runs: what it measures. */
  measures: string;
  /** Which figure the table and bar chart lead with. */
  primary: PrimaryMetric;
  /** Whether to sample event-loop timer lateness during each trial. */
  monitorsEventLoop: boolean;
  /**
   * `"scenario"`: every contender stays open for all rounds of a scenario.
   * `"trial"`: a contender is opened just before each of its trials and closed
   * right after (for contenders that cannot coexist, e.g. per-request PKCS#11
   * code that finalises the module).
   */
  lifetime: "scenario" | "trial";
  /** Load shapes, run one after another. */
  scenarios: Scenario[];
  /** Who runs them; trials of one scenario are interleaved across rounds. */
  contenders: Contender[];
  /** Goals, shown as PASS/MISS. */
  targets: Target[];
  /** Contenders the table gives ratio columns against (default: every alternative). */
  ratioBaselines?: string[];
  /** Notes printed under the table (setup facts, caveats); `prepare` may add to them. */
  notes?: string[];
  /** Called once before anything runs (setup), returning the cleanup. */
  prepare?: () => Promise<() => Promise<void>>;
  /** Which contenders take part in a scenario (default: all). */
  contendersFor?: (scenario: Scenario) => Contender[];
}

/** Run lengths: full runs and `--quick` runs differ only here. */
export interface RunPlan {
  /** Measured rounds per scenario. */
  rounds: number;
  /** Length of one measured trial (ms). */
  trialMs: number;
  /** Length of the warm-up trial per contender and scenario (ms), discarded. */
  warmupMs: number;
}

/** One measured round of one contender in one scenario. */
export interface RoundFigure {
  /** 1-based round number. */
  round: number;
  /** Operations completed. */
  ops: number;
  /** Wall time (ms). */
  elapsedMs: number;
  /** ops / s. */
  opsPerSec: number;
  /** µs per op (elapsed / ops; with N callers, the pool's cost per op, not a latency). */
  usPerOp: number;
  /** Latency percentiles of this round, if recorded. */
  latency?: LatencySummary;
  /** p99 event-loop timer lateness during this round (ms), if monitored. */
  timerLatenessP99Ms?: number;
  /** Operations that failed in this round, if counted. */
  failures?: number;
}

/** Everything measured for one contender in one scenario. */
export interface ContenderResult {
  /** Contender name. */
  contender: string;
  /** Median of the rounds' ops/s. */
  opsPerSec: number;
  /** Smallest round ops/s. */
  opsPerSecMin: number;
  /** Largest round ops/s. */
  opsPerSecMax: number;
  /** Median of the rounds' µs/op. */
  usPerOp: number;
  /** Smallest round µs/op. */
  usPerOpMin: number;
  /** Largest round µs/op. */
  usPerOpMax: number;
  /** Percentiles over every latency sample of every round, if recorded. */
  latency?: LatencySummary;
  /** p99 timer lateness over every round's samples (ms), if monitored. */
  timerLatenessP99Ms?: number;
  /** Largest timer lateness seen (ms), if monitored. */
  timerLatenessMaxMs?: number;
  /** Operations that failed over every round, if counted. */
  failures?: number;
  /** Each measured round. */
  rounds: RoundFigure[];
  /** Set when the contender threw; its figures cover the rounds before that. */
  error?: string;
}

/** One scenario of a benchmark, all contenders. */
export interface ScenarioResult {
  /** The scenario. */
  scenario: Scenario;
  /** One entry per contender, in the benchmark's contender order. */
  results: ContenderResult[];
}

/** A finished benchmark: what it is (as defined), its figures and its verdicts. */
export interface BenchmarkResult
  extends Pick<Benchmark, "id" | "title" | "measures" | "primary" | "ratioBaselines"> {
  /** The run plan used. */
  plan: RunPlan;
  /** Contender names and descriptions. */
  contenders: { name: string; description: string; ours: boolean }[];
  /** Per-scenario figures. */
  scenarios: ScenarioResult[];
  /** Target verdicts. */
  targets: TargetResult[];
  /** Notes added by the benchmark (e.g. how a contender was set up). */
  notes: string[];
  /** Set when the benchmark could not run at all (and why). */
  skipped?: string;
  /**
   * Timer lateness with nothing running (ms), sampled before the first scenario of a benchmark
   * that monitors the event loop: the floor its lateness figures stand on.
   */
  idleTimerLatenessMs?: { p50: number; p99: number; max: number };
}

/** How often a caller that does not time each op looks at the clock. */
const CLOCK_EVERY = 64;

/**
 * Runs `op` in `concurrency` callers (`op` gets the caller's index) until `durationMs` has
 * passed; each caller finishes its op in flight. With `recordLatency`, every op is timed;
 * without, the clock is read only every few ops so that cheap ops (a pool acquire+release is
 * about a microsecond) are not dominated by timing.
 */
export async function runCallers(
  concurrency: number,
  durationMs: number,
  op: (caller: number) => Promise<unknown>,
  recordLatency: boolean,
): Promise<Trial> {
  const samples = recordLatency ? new SampleBuffer() : undefined;
  const start = performance.now();
  const end = start + durationMs;
  let ops = 0;
  const caller = async (i: number) => {
    if (samples) {
      while (true) {
        const t0 = performance.now();
        if (t0 >= end) return;
        await op(i);
        samples.push(performance.now() - t0);
        ops++;
      }
    }
    while (performance.now() < end) {
      for (let n = 0; n < CLOCK_EVERY; n++) await op(i);
      ops += CLOCK_EVERY;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, i) => caller(i)));
  return { ops, elapsedMs: performance.now() - start, latenciesMs: samples?.values() };
}

/**
 * The usual contender instance: `op` from the scenario's callers, every op timed (`timed`).
 * With `warmUp`, `op` first runs `warmUp` times at once (opening every connection, preparing
 * every statement, proving the calls work); if that fails, `close` runs and the error is thrown.
 */
export async function callersOf(
  concurrency: number,
  op: (caller: number) => Promise<unknown>,
  close: () => Promise<void> = () => Promise.resolve(),
  { warmUp = 0, timed = true } = {},
): Promise<ContenderInstance> {
  try {
    await Promise.all(Array.from({ length: warmUp }, (_, i) => op(i)));
  } catch (error) {
    await close();
    throw error;
  }
  return { trial: (ms) => runCallers(concurrency, ms, op, timed), close };
}

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

/** A growable buffer of samples that avoids boxing numbers. */
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

/**
 * The shape of one benchmark: scenarios (what load), contenders (who runs
 * it), targets (what counts as good enough) and how long to run. The runner
 * in `rounds.ts` turns a {@link Benchmark} into {@link BenchmarkResult}s.
 *
 * @module
 */

import type { LatencySummary } from "./stats.ts";
import type { Target, TargetResult } from "./targets.ts";

/** What one trial of one contender measured. */
export interface Trial {
  /** Operations completed. */
  ops: number;
  /** Wall time from the first operation started to the last finished (ms). */
  elapsedMs: number;
  /** Per-operation latencies (ms), when the benchmark records them. */
  latenciesMs?: ArrayLike<number>;
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
  /** Whether trials record per-operation latencies (percentile chart). */
  recordsLatency: boolean;
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
}

/** Everything measured for one contender in one scenario. */
export interface ContenderResult {
  /** Contender name. */
  contender: string;
  /** Median of the rounds' ops/s. */
  opsPerSec: number;
  /** Smallest and largest round ops/s. */
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

/** A finished benchmark. */
export interface BenchmarkResult {
  /** Benchmark id. */
  id: string;
  /** Title. */
  title: string;
  /** What it measures. */
  measures: string;
  /** Primary metric. */
  primary: PrimaryMetric;
  /** The run plan used. */
  plan: RunPlan;
  /** Contender names and descriptions. */
  contenders: { name: string; description: string; ours: boolean }[];
  /** Per-scenario figures. */
  scenarios: ScenarioResult[];
  /** Target verdicts. */
  targets: TargetResult[];
  /** Contenders the table gives ratio columns against (default: every alternative). */
  ratioBaselines?: string[];
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

/**
 * Runs a list of benchmarks end to end: say what each measures, prepare its
 * setup (a throwaway PostgreSQL, a private SoftHSM token), run the rounds
 * (interleaved contenders, warm-up, event-loop lateness sampled alongside,
 * progress on stderr), clean up, then print the tables to stdout and write
 * the files.
 *
 * @module
 */

import denoJson from "../../deno.json" with { type: "json" };
import {
  type Benchmark,
  type BenchmarkResult,
  type Contender,
  type ContenderInstance,
  type ContenderResult,
  median,
  quantileSorted,
  type RoundFigure,
  type RunPlan,
  SampleBuffer,
  type Scenario,
  type ScenarioResult,
  summarizeLatencies,
  type Trial,
} from "./benchmark.ts";
import type { BenchArgs } from "./main.ts";
import {
  benchmarkMarkdown,
  describeMachine,
  machineInfo,
  type RunReport,
  writeReport,
} from "./report.ts";
import { evaluateTargets } from "./targets.ts";

/** Runs `benchmarks`, prints their tables, writes the report; returns it. */
export async function runSuite(
  benchmarks: readonly Benchmark[],
  args: BenchArgs,
): Promise<RunReport> {
  const progress = new Progress();
  // Say what escaped, with its stack, before the process dies of it.
  globalThis.addEventListener("unhandledrejection", (e) => {
    progress.log(`bench: unhandled rejection: ${(e.reason as Error)?.stack ?? e.reason}`);
  });
  const machine = machineInfo();
  progress.log(`bench: ${describeMachine(machine)}${args.quick ? " (quick run)" : ""}`);
  const results: BenchmarkResult[] = [];
  for (const bench of benchmarks) {
    progress.log(`\n${bench.title}: ${bench.measures}`);
    const result = await runOne(bench, args, progress);
    progress.clear();
    console.log(benchmarkMarkdown(result));
    results.push(result);
  }
  const report: RunReport = {
    machine,
    quick: args.quick,
    plan: args.plan,
    versions: { ...denoJson.imports },
    benchmarks: results,
  };
  const files = await writeReport(args.outDir, report);
  progress.log(`bench: wrote ${files.join(", ")}`);
  return report;
}

/** Prepares, runs and cleans up one benchmark; setup that cannot run is reported, not thrown. */
async function runOne(
  bench: Benchmark,
  args: BenchArgs,
  progress: Progress,
): Promise<BenchmarkResult> {
  let cleanup: (() => Promise<void>) | undefined;
  try {
    cleanup = await bench.prepare?.();
  } catch (error) {
    // Setup that cannot run (no PostgreSQL binaries, no SoftHSM) is reported, and its targets MISS.
    const message = error instanceof Error ? error.message : String(error);
    progress.log(`  not run: ${message}`);
    return { ...resultOf(bench, args.plan, []), notes: [], skipped: message };
  }
  try {
    return await runBenchmark(bench, args.plan, progress);
  } finally {
    await cleanup?.();
  }
}

/** Fixed cost per trial beyond its duration (open/close, settling), for the time-left estimate. */
const OVERHEAD_PER_TRIAL_MS = 30;

/** Runs one benchmark to completion and evaluates its targets. */
async function runBenchmark(
  bench: Benchmark,
  plan: RunPlan,
  progress: Progress,
): Promise<BenchmarkResult> {
  const lineup = (s: Scenario) => bench.contendersFor?.(s) ?? bench.contenders;
  const totalTrials = bench.scenarios.reduce((n, s) => n + lineup(s).length, 0);
  let msLeft = totalTrials *
    (plan.warmupMs + plan.rounds * plan.trialMs + (plan.rounds + 1) * OVERHEAD_PER_TRIAL_MS);

  let idle: BenchmarkResult["idleTimerLatenessMs"];
  if (bench.monitorsEventLoop) {
    progress.log(`  sampling timer lateness with nothing running (${plan.trialMs} ms)`);
    const monitor = new EventLoopMonitor();
    await new Promise((resolve) => setTimeout(resolve, plan.trialMs));
    const { p50, p99, max } = summarizeLatencies(monitor.stop());
    idle = { p50, p99, max };
  }

  const scenarios: ScenarioResult[] = [];
  for (const scenario of bench.scenarios) {
    const contenders = lineup(scenario);
    const trials = new Map(contenders.map((c) => [c.name, [] as Measured[]]));
    const open = new Map<string, ContenderInstance>();
    const failed = new Map<string, string>();
    try {
      for (let round = 0; round <= plan.rounds; round++) {
        for (let i = 0; i < contenders.length; i++) {
          const c = contenders[(i + round) % contenders.length];
          const durationMs = round === 0 ? plan.warmupMs : plan.trialMs;
          if (failed.has(c.name)) continue;
          const when = round === 0 ? "warm-up" : `round ${round}/${plan.rounds}`;
          progress.update(
            `[${bench.title}] ${scenario.label} · ${when} · ${c.name} · ~${left(msLeft)} left`,
          );
          let measured;
          try {
            measured = await measure(bench, c, scenario, open, durationMs);
          } catch (error) {
            // A contender that breaks is reported (and its targets MISS); the others go on.
            const message = error instanceof Error ? error.message : String(error);
            failed.set(c.name, message);
            progress.log(`  ${c.name} failed in "${scenario.label}": ${message}`);
            continue;
          } finally {
            msLeft -= durationMs + OVERHEAD_PER_TRIAL_MS;
          }
          if (round > 0) trials.get(c.name)!.push(measured);
        }
      }
    } finally {
      for (const inst of open.values()) await inst.close();
    }
    scenarios.push({
      scenario,
      results: contenders.map((c) => summarize(c.name, trials.get(c.name)!, failed.get(c.name))),
    });
  }
  return { ...resultOf(bench, plan, scenarios), ...(idle ? { idleTimerLatenessMs: idle } : {}) };
}

/** What a benchmark's result says about the benchmark itself, its figures and its verdicts. */
function resultOf(
  bench: Benchmark,
  plan: RunPlan,
  scenarios: ScenarioResult[],
): BenchmarkResult {
  const { id, title, measures, primary, ratioBaselines } = bench;
  return {
    id,
    title,
    measures,
    primary,
    plan,
    contenders: bench.contenders.map(({ name, description, ours }) => ({
      name,
      description,
      ours,
    })),
    scenarios,
    targets: evaluateTargets(bench.targets, scenarios),
    ...(ratioBaselines ? { ratioBaselines } : {}),
    notes: bench.notes ?? [],
  };
}

/** A trial and, when the benchmark monitors the event loop, the timer lateness during it (ms). */
type Measured = Trial & { latenessMs?: Float64Array };

async function measure(
  bench: Benchmark,
  c: Contender,
  scenario: Scenario,
  open: Map<string, ContenderInstance>,
  durationMs: number,
): Promise<Measured> {
  let inst = open.get(c.name);
  if (!inst) {
    inst = await c.open(scenario);
    if (bench.lifetime === "scenario") open.set(c.name, inst);
  }
  const monitor = bench.monitorsEventLoop ? new EventLoopMonitor() : undefined;
  try {
    const trial = await inst.trial(durationMs);
    return { ...trial, latenessMs: monitor?.stop() };
  } finally {
    monitor?.stop();
    if (bench.lifetime === "trial") await inst.close();
  }
}

function summarize(name: string, trials: Measured[], error: string | undefined): ContenderResult {
  const rounds: RoundFigure[] = trials.map((t, i) => {
    const fig: RoundFigure = {
      round: i + 1,
      ops: t.ops,
      elapsedMs: t.elapsedMs,
      opsPerSec: t.ops / (t.elapsedMs / 1000),
      usPerOp: (t.elapsedMs * 1000) / t.ops,
    };
    if (t.latenciesMs) fig.latency = summarizeLatencies(t.latenciesMs);
    if (t.latenessMs) fig.timerLatenessP99Ms = quantileSorted(t.latenessMs.slice().sort(), 0.99);
    if (t.failures !== undefined) fig.failures = t.failures;
    return fig;
  });
  const ops = rounds.map((r) => r.opsPerSec);
  const us = rounds.map((r) => r.usPerOp);
  const result: ContenderResult = {
    contender: name,
    opsPerSec: median(ops),
    opsPerSecMin: ops.length ? Math.min(...ops) : NaN,
    opsPerSecMax: ops.length ? Math.max(...ops) : NaN,
    usPerOp: median(us),
    usPerOpMin: us.length ? Math.min(...us) : NaN,
    usPerOpMax: us.length ? Math.max(...us) : NaN,
    rounds,
  };
  if (error !== undefined) result.error = error;
  const failures = rounds.flatMap((r) => r.failures ?? []);
  if (failures.length) result.failures = failures.reduce((a, b) => a + b, 0);
  const latencies = trials.flatMap((t) => t.latenciesMs ? [t.latenciesMs] : []);
  if (latencies.length) result.latency = summarizeLatencies(concat(latencies));
  const lateness = trials.flatMap((t) => t.latenessMs ? [t.latenessMs] : []);
  if (lateness.length) {
    const all = concat(lateness).sort();
    result.timerLatenessP99Ms = quantileSorted(all, 0.99);
    result.timerLatenessMaxMs = all.length ? all[all.length - 1] : NaN;
  }
  return result;
}

function concat(parts: ArrayLike<number>[]): Float64Array {
  const out = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const encoder = new TextEncoder();

/** Writes progress to stderr without disturbing stdout. */
class Progress {
  readonly #tty = Deno.stderr.isTerminal();
  #lastPlainAt = 0;
  #drawn = false;

  /** Shows where the run is: on one line rewritten in place on a terminal, else every 5 s. */
  update(line: string): void {
    if (this.#tty) {
      Deno.stderr.writeSync(encoder.encode(`\r\x1b[2K${line}`));
      this.#drawn = true;
    } else if (performance.now() - this.#lastPlainAt > 5_000) {
      this.#lastPlainAt = performance.now();
      Deno.stderr.writeSync(encoder.encode(line + "\n"));
    }
  }

  /** Prints a full line (a heading, a note), clearing the progress line first. */
  log(message: string): void {
    this.clear();
    Deno.stderr.writeSync(encoder.encode(message + "\n"));
  }

  /** Erases the progress line. */
  clear(): void {
    if (this.#tty && this.#drawn) Deno.stderr.writeSync(encoder.encode("\r\x1b[2K"));
    this.#drawn = false;
  }
}

/** Time left: "1m 05s", "12s". */
function left(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s >= 60 ? `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s` : `${s}s`;
}

const DELAY_MS = 1;

/** A lateness probe, sampling from when it is made; `stop()` returns every sample (ms). */
class EventLoopMonitor {
  readonly #samples = new SampleBuffer();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #expected = 0;

  /** Starts sampling. */
  constructor() {
    this.#schedule();
  }

  /** Stops sampling and returns the samples. */
  stop(): Float64Array {
    if (this.#timer !== undefined) {
      // A timer still pending past its due time was held up by work that has not yielded yet
      // (a synchronous loop): that delay counts too.
      const late = performance.now() - this.#expected;
      if (late > 0) this.#samples.push(late);
    }
    clearTimeout(this.#timer);
    this.#timer = undefined;
    return this.#samples.values().slice();
  }

  #schedule(): void {
    this.#expected = performance.now() + DELAY_MS;
    this.#timer = setTimeout(this.#tick, DELAY_MS);
  }

  readonly #tick = (): void => {
    this.#samples.push(Math.max(0, performance.now() - this.#expected));
    this.#schedule();
  };
}

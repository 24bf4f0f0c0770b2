/**
 * Runs a benchmark: per scenario, a discarded warm-up trial per contender,
 * then interleaved measured rounds (the contenders' order rotates each round,
 * so drift on a noisy machine hits all of them alike), then medians and
 * min-max across rounds.
 *
 * @module
 */

import type {
  Benchmark,
  BenchmarkResult,
  Contender,
  ContenderInstance,
  ContenderResult,
  RoundFigure,
  RunPlan,
  Scenario,
  ScenarioResult,
  Trial,
} from "./benchmark.ts";
import { EventLoopMonitor } from "./event_loop_monitor.ts";
import type { Progress } from "./progress.ts";
import { median, quantileSorted, summarizeLatencies } from "./stats.ts";
import { evaluateTargets } from "./targets.ts";

/** Fixed cost per trial beyond its duration (open/close, settling), for the time-left estimate. */
const OVERHEAD_PER_TRIAL_MS = 30;

/** Runs one benchmark to completion and evaluates its targets. */
export async function runBenchmark(
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
    monitor.start();
    await new Promise((resolve) => setTimeout(resolve, plan.trialMs));
    const { p50, p99, max } = summarizeLatencies(monitor.stop());
    idle = { p50, p99, max };
  }

  const scenarios: ScenarioResult[] = [];
  for (const scenario of bench.scenarios) {
    const contenders = lineup(scenario);
    const raw = new Map<string, { trials: Trial[]; lateness: Float64Array[] }>();
    for (const c of contenders) raw.set(c.name, { trials: [], lateness: [] });
    const open = new Map<string, ContenderInstance>();
    const failed = new Map<string, string>();
    try {
      for (let round = 0; round <= plan.rounds; round++) {
        for (let i = 0; i < contenders.length; i++) {
          const c = contenders[(i + round) % contenders.length];
          const durationMs = round === 0 ? plan.warmupMs : plan.trialMs;
          if (failed.has(c.name)) continue;
          progress.update({
            benchmark: bench.title,
            scenario: scenario.label,
            contender: c.name,
            round,
            rounds: plan.rounds,
            leftMs: msLeft,
          });
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
          const { trial, lateness } = measured;
          if (round === 0) continue;
          raw.get(c.name)!.trials.push(trial);
          if (lateness) raw.get(c.name)!.lateness.push(lateness);
        }
      }
    } finally {
      for (const inst of open.values()) await inst.close();
    }
    scenarios.push({
      scenario,
      results: contenders.map((c) => summarize(c.name, raw.get(c.name)!, failed.get(c.name))),
    });
  }
  return {
    id: bench.id,
    title: bench.title,
    measures: bench.measures,
    primary: bench.primary,
    plan,
    contenders: bench.contenders.map(({ name, description, ours }) => ({
      name,
      description,
      ours,
    })),
    scenarios,
    targets: evaluateTargets(bench.targets, scenarios),
    ...(bench.ratioBaselines ? { ratioBaselines: bench.ratioBaselines } : {}),
    notes: bench.notes ?? [],
    ...(idle ? { idleTimerLatenessMs: idle } : {}),
  };
}

async function measure(
  bench: Benchmark,
  c: Contender,
  scenario: Scenario,
  open: Map<string, ContenderInstance>,
  durationMs: number,
): Promise<{ trial: Trial; lateness?: Float64Array }> {
  let inst = open.get(c.name);
  if (!inst) {
    inst = await c.open(scenario);
    if (bench.lifetime === "scenario") open.set(c.name, inst);
  }
  const monitor = bench.monitorsEventLoop ? new EventLoopMonitor() : undefined;
  try {
    monitor?.start();
    const trial = await inst.trial(durationMs);
    return { trial, lateness: monitor?.stop() };
  } finally {
    monitor?.stop();
    if (bench.lifetime === "trial") await inst.close();
  }
}

function summarize(
  name: string,
  raw: { trials: Trial[]; lateness: Float64Array[] },
  error: string | undefined,
): ContenderResult {
  const rounds: RoundFigure[] = raw.trials.map((t, i) => {
    const fig: RoundFigure = {
      round: i + 1,
      ops: t.ops,
      elapsedMs: t.elapsedMs,
      opsPerSec: t.ops / (t.elapsedMs / 1000),
      usPerOp: (t.elapsedMs * 1000) / t.ops,
    };
    if (t.latenciesMs) fig.latency = summarizeLatencies(t.latenciesMs);
    const late = raw.lateness[i];
    if (late) fig.timerLatenessP99Ms = quantileSorted(late.slice().sort(), 0.99);
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
  const withLatency = raw.trials.filter((t) => t.latenciesMs);
  if (withLatency.length) {
    result.latency = summarizeLatencies(concat(withLatency.map((t) => t.latenciesMs!)));
  }
  if (raw.lateness.length) {
    const all = concat(raw.lateness).sort();
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

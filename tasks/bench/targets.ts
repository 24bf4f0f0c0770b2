/**
 * Targets: the goals an issue sets, checked against measured figures and
 * shown as PASS or MISS. A target that cannot be evaluated (a contender
 * failed) is a MISS too, never silently dropped.
 *
 * @module
 */

import type { ContenderResult, ScenarioResult } from "./benchmark.ts";

/** A figure a target can be about. */
export type TargetMetric =
  | "opsPerSec"
  | "usPerOp"
  | "p50"
  | "p99"
  | "timerLatenessP99Ms";

/** An absolute condition on one figure of a contender, e.g. timer lateness p99 ≤ 5 ms. */
export interface TargetCondition {
  /** The figure. */
  metric: TargetMetric;
  /** `"atMost"` or `"atLeast"` the limit. */
  direction: "atMost" | "atLeast";
  /** The value. */
  limit: number;
}

/**
 * `ratio`: `metric(contender) / metric(baseline)` compared with `limit`.
 * `absolute`: `metric(contender)` compared with `limit`.
 */
export interface Target extends TargetCondition {
  /** What the target says, in the words. */
  label: string;
  /** Scenario id it is checked in. */
  scenario: string;
  /**
   * Contender the target is about (ours). With {@link Target.bestOf}, the name shown for the
   * group ("best engine").
   */
  contender: string;
  /**
   * "The best of these": the subject is whichever of them has the best figure (highest ops/s,
   * lowest time) among those that also meet {@link Target.when}; chosen after measuring.
   */
  bestOf?: string[];
  /** A condition the subject must meet as well (checked on the same run). */
  when?: TargetCondition;
  /** For a ratio target: the alternative it is compared with. */
  baseline?: string;
  /** For a ratio target against "the better peer": the best of these is the baseline. */
  baselineBestOf?: string[];
}

/** A target's verdict. */
export interface TargetResult extends Target {
  /** The measured ratio or value; NaN when it could not be measured. */
  measured: number;
  /** PASS or MISS. */
  verdict: "PASS" | "MISS";
  /** The contender the figure is of (the chosen one for `bestOf`). */
  subject?: string;
  /** The baseline it was compared with (the chosen one for `baselineBestOf`). */
  against?: string;
  /** The subject's figure for {@link Target.when}, when there is a condition. */
  conditionMeasured?: number;
}

/** Reads one figure of a contender's result. */
export function metricOf(r: ContenderResult, metric: TargetMetric): number {
  switch (metric) {
    case "opsPerSec":
      return r.opsPerSec;
    case "usPerOp":
      return r.usPerOp;
    case "p50":
      return r.latency?.p50 ?? NaN;
    case "p99":
      return r.latency?.p99 ?? NaN;
    case "timerLatenessP99Ms":
      return r.timerLatenessP99Ms ?? NaN;
  }
}

/** Whether a larger value of `metric` is better (throughput) or worse (times). */
const higherIsBetter = (metric: TargetMetric) => metric === "opsPerSec";

function meets(value: number, c: { direction: "atMost" | "atLeast"; limit: number }): boolean {
  return Number.isFinite(value) && (c.direction === "atMost" ? value <= c.limit : value >= c.limit);
}

/** The best result among `names` by `metric` (failed contenders and NaN figures excluded). */
function best(
  results: readonly ContenderResult[],
  names: readonly string[],
  metric: TargetMetric,
  when?: TargetCondition,
): ContenderResult | undefined {
  const sign = higherIsBetter(metric) ? 1 : -1;
  let chosen: ContenderResult | undefined;
  for (const r of results) {
    if (!names.includes(r.contender) || r.error) continue;
    const v = metricOf(r, metric);
    if (!Number.isFinite(v) || (when && !meets(metricOf(r, when.metric), when))) continue;
    if (!chosen || sign * (v - metricOf(chosen, metric)) > 0) chosen = r;
  }
  return chosen;
}

/** Checks one target against one scenario's results. */
function evaluate(t: Target, sc: ScenarioResult | undefined): TargetResult {
  const results = sc?.results ?? [];
  // "The best engine with the event loop free": the best among those meeting `when`; if none
  // does, the best of all (its figure is shown, and the target MISSes on the condition).
  const subject = t.bestOf
    ? best(results, t.bestOf, t.metric, t.when) ?? best(results, t.bestOf, t.metric)
    : results.find((r) => r.contender === t.contender);
  const base = t.baselineBestOf
    ? best(results, t.baselineBestOf, t.metric)
    : t.baseline
    ? results.find((r) => r.contender === t.baseline)
    : undefined;
  let measured = NaN;
  // A contender that broke mid-run cannot pass (or be passed against).
  if (subject && !subject.error && !base?.error) {
    const v = metricOf(subject, t.metric);
    measured = isRatioTarget(t) ? (base ? v / metricOf(base, t.metric) : NaN) : v;
  }
  const conditionMeasured = t.when && subject ? metricOf(subject, t.when.metric) : undefined;
  const conditionMet = !t.when ||
    (conditionMeasured !== undefined && meets(conditionMeasured, t.when));
  return {
    ...t,
    measured,
    verdict: meets(measured, t) && conditionMet ? "PASS" : "MISS",
    ...(subject ? { subject: subject.contender } : {}),
    ...(base ? { against: base.contender } : {}),
    ...(conditionMeasured !== undefined ? { conditionMeasured } : {}),
  };
}

/** Checks every target against the scenarios' results. */
export function evaluateTargets(
  targets: readonly Target[],
  scenarios: readonly ScenarioResult[],
): TargetResult[] {
  return targets.map((t) => evaluate(t, scenarios.find((s) => s.scenario.id === t.scenario)));
}

/** Whether a target compares with a baseline (a ratio) rather than an absolute value. */
export function isRatioTarget(t: Target): boolean {
  return t.baseline !== undefined || t.baselineBestOf !== undefined;
}

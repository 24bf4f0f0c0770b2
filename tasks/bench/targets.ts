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

/**
 * `ratio`: `metric(contender) / metric(baseline)` compared with `limit`.
 * `absolute`: `metric(contender)` compared with `limit`.
 */
export interface Target {
  /** What the target says, in the words. */
  label: string;
  /** Scenario id it is checked in. */
  scenario: string;
  /** The figure compared. */
  metric: TargetMetric;
  /** Contender the target is about (ours). */
  contender: string;
  /** For a ratio target: the alternative it is compared with. */
  baseline?: string;
  /** `"atMost"` or `"atLeast"` the limit. */
  direction: "atMost" | "atLeast";
  /** The ratio (ratio target) or the value (absolute target). */
  limit: number;
}

/** A target's verdict. */
export interface TargetResult extends Target {
  /** The measured ratio or value; NaN when it could not be measured. */
  measured: number;
  /** PASS or MISS. */
  verdict: "PASS" | "MISS";
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

/** Checks every target against the scenarios' results. */
export function evaluateTargets(
  targets: readonly Target[],
  scenarios: readonly ScenarioResult[],
): TargetResult[] {
  return targets.map((t) => {
    const sc = scenarios.find((s) => s.scenario.id === t.scenario);
    const subject = sc?.results.find((r) => r.contender === t.contender);
    const base = t.baseline ? sc?.results.find((r) => r.contender === t.baseline) : undefined;
    let measured = NaN;
    // A contender that broke mid-run cannot pass (or be passed against).
    if (subject && !subject.error && !base?.error) {
      const v = metricOf(subject, t.metric);
      measured = t.baseline ? (base ? v / metricOf(base, t.metric) : NaN) : v;
    }
    const ok = Number.isFinite(measured) &&
      (t.direction === "atMost" ? measured <= t.limit : measured >= t.limit);
    return { ...t, measured, verdict: ok ? "PASS" : "MISS" };
  });
}

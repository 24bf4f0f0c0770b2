/**
 * Target verdicts: how a benchmark turns figures into PASS or MISS, including
 * "the best engine, with the event loop free" and "the better of two peers".
 * Figures are made up here; no speed is measured.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ContenderResult, ScenarioResult } from "../../tasks/bench/benchmark.ts";
import { evaluateTargets, type Target } from "../../tasks/bench/targets.ts";

function result(contender: string, opsPerSec: number, lateMs = 1, p99 = 1): ContenderResult {
  return {
    contender,
    opsPerSec,
    opsPerSecMin: opsPerSec,
    opsPerSecMax: opsPerSec,
    usPerOp: 1e6 / opsPerSec,
    usPerOpMin: 1e6 / opsPerSec,
    usPerOpMax: 1e6 / opsPerSec,
    latency: { count: 1, p50: p99 / 2, p90: p99, p99, p999: p99, max: p99, mean: p99 / 2 },
    timerLatenessP99Ms: lateMs,
    rounds: [],
  };
}

function scenario(...results: ContenderResult[]): ScenarioResult[] {
  return [{ scenario: { id: "s", label: "s", concurrency: 32 }, results }];
}

const bestEngine: Target = {
  label: "best engine ≥ 1.2× raw, loop free",
  scenario: "s",
  metric: "opsPerSec",
  contender: "best engine",
  bestOf: ["a", "b"],
  when: { metric: "timerLatenessP99Ms", direction: "atMost", limit: 5 },
  baseline: "raw",
  direction: "atLeast",
  limit: 1.2,
};

Deno.test("a best-of target is judged on the fastest candidate that meets its condition", () => {
  const [t] = evaluateTargets(
    [bestEngine],
    scenario(
      result("a", 1300),
      result("b", 2000, 9), // faster, but blocks the event loop: not eligible
      result("raw", 1000, 900),
    ),
  );
  assert.equal(t.subject, "a");
  assert.equal(t.measured, 1.3);
  assert.equal(t.verdict, "PASS");
});

Deno.test("a best-of target MISSes when no candidate meets its condition", () => {
  const [t] = evaluateTargets(
    [bestEngine],
    scenario(
      result("a", 1300, 6),
      result("b", 2000, 9),
      result("raw", 1000, 900),
    ),
  );
  assert.equal(t.subject, "b");
  assert.equal(t.measured, 2);
  assert.equal(t.conditionMeasured, 9);
  assert.equal(t.verdict, "MISS");
});

Deno.test("a target against the better peer takes the faster of the two as baseline", () => {
  const target: Target = {
    label: "≥ 0.95× the better peer",
    scenario: "s",
    metric: "opsPerSec",
    contender: "ours",
    baselineBestOf: ["p", "q"],
    direction: "atLeast",
    limit: 0.95,
  };
  const [t] = evaluateTargets(
    [target],
    scenario(
      result("ours", 900),
      result("p", 800),
      result("q", 1000),
    ),
  );
  assert.equal(t.against, "q");
  assert.equal(t.measured, 0.9);
  assert.equal(t.verdict, "MISS");
});

Deno.test("a ratio target on p99 passes when ours is no worse than the baseline", () => {
  const target: Target = {
    label: "p99 ≤ peer",
    scenario: "s",
    metric: "p99",
    contender: "ours",
    baseline: "peer",
    direction: "atMost",
    limit: 1,
  };
  const [t] = evaluateTargets([target], scenario(result("ours", 1, 1, 4), result("peer", 1, 1, 5)));
  assert.equal(t.measured, 0.8);
  assert.equal(t.verdict, "PASS");
});

Deno.test("a target whose contender failed is a MISS, not dropped", () => {
  const failed = { ...result("ours", 5000), error: "boom" };
  const target: Target = {
    label: "≥ 1.0× peer",
    scenario: "s",
    metric: "opsPerSec",
    contender: "ours",
    baseline: "peer",
    direction: "atLeast",
    limit: 1,
  };
  const [t] = evaluateTargets([target], scenario(failed, result("peer", 1000)));
  assert.ok(Number.isNaN(t.measured));
  assert.equal(t.verdict, "MISS");
});

Deno.test("a no-failures target passes at zero failed calls, and MISSes when any failed or none were counted", () => {
  const noFailures: Target = {
    label: "failed calls = 0",
    scenario: "s",
    metric: "failures",
    contender: "ours",
    direction: "atMost",
    limit: 0,
  };
  const verdict = (failures?: number) =>
    evaluateTargets(
      [noFailures],
      scenario({ ...result("ours", 1000), ...(failures === undefined ? {} : { failures }) }),
    )[0].verdict;
  assert.equal(verdict(0), "PASS");
  assert.equal(verdict(3), "MISS");
  assert.equal(verdict(undefined), "MISS");
});

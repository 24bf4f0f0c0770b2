import { test } from "../pool/sanitized.ts";
import assert from "node:assert/strict";
import { HistogramDelta, replay } from "../../otel/histogram_delta.ts";
import { DurationHistogram, WAIT_BUCKETS_MS } from "../../pool/metrics.ts";

/** An OpenTelemetry-like histogram that keeps every recorded value (seconds) and its attributes. */
function sink() {
  const values: number[] = [];
  const attributes: unknown[] = [];
  return {
    values,
    attributes,
    record(v: number, a: unknown) {
      values.push(v);
      attributes.push(a);
    },
  };
}

/** What an OpenTelemetry histogram with the pool's bounds aggregates of `valuesS` (inclusive bounds). */
function aggregate(valuesS: number[]) {
  const buckets = new Array(WAIT_BUCKETS_MS.length + 1).fill(0);
  for (const v of valuesS) {
    const i = WAIT_BUCKETS_MS.findIndex((b) => v <= b / 1000);
    buckets[i === -1 ? WAIT_BUCKETS_MS.length : i]++;
  }
  const sum = valuesS.reduce((a, b) => a + b, 0);
  return {
    count: valuesS.length,
    sum: Number(sum.toFixed(9)),
    buckets,
    min: Math.min(...valuesS),
    max: Math.max(...valuesS),
  };
}

/** Records `durationsMs` into the pool's histogram, flushing through a delta after each batch. */
function replayBatches(batches: number[][]) {
  const pool = new DurationHistogram();
  const delta = new HistogramDelta();
  const out = sink();
  for (const batch of batches) {
    for (const ms of batch) pool.record(ms);
    replay(delta.next(pool.snapshot()), out, { pool: "p" });
  }
  return out;
}

test("replaying the pool's histogram gives the count, sum, min, max and buckets of direct recording", () => {
  const durationsMs = [0, 0, 0.4, 1, 2, 3, 4.5, 5, 7, 9, 12, 24, 25, 26, 300, 0.5, 45_000];
  const out = replayBatches([durationsMs]);
  assert.deepEqual(aggregate(out.values), aggregate(durationsMs.map((ms) => ms / 1000)));
});

test("flushes in several batches record each duration once, with later new min and max", () => {
  const batches = [[5, 7, 9], [4, 6], [], [2, 700, 3], [0.2, 60_000, 800]];
  const out = replayBatches(batches);
  assert.deepEqual(aggregate(out.values), aggregate(batches.flat().map((ms) => ms / 1000)));
});

test("a flush with nothing new records nothing", () => {
  const pool = new DurationHistogram();
  const delta = new HistogramDelta();
  pool.record(3);
  replay(delta.next(pool.snapshot()), sink(), {});
  const again = sink();
  replay(delta.next(pool.snapshot()), again, {});
  assert.deepEqual(again.values, []);
});

test("a duration on a bound is recorded in that bound's bucket, as OpenTelemetry's inclusive bounds", () => {
  const out = replayBatches([[5, 5, 5, 10]]);
  assert.deepEqual(aggregate(out.values).buckets, aggregate([0.005, 0.005, 0.005, 0.01]).buckets);
});

test("every value is recorded with the pool's attributes", () => {
  const out = replayBatches([[1, 2, 3, 400]]);
  assert.equal(out.attributes.length, 4);
  assert.ok(out.attributes.every((a) => JSON.stringify(a) === '{"pool":"p"}'));
});

import assert from "node:assert/strict";
import { TimingBuffer } from "../../otel/timing_buffer.ts";

const BOUNDS_MS = [1, 5, 10, 25];

/** A histogram that keeps what is recorded, as OpenTelemetry's would aggregate it. */
function sink() {
  const values: number[] = [];
  return { values, record: (v: number, _a: unknown) => void values.push(v) };
}

function bucketOf(seconds: number): number {
  const i = BOUNDS_MS.findIndex((b) => seconds * 1000 <= b + 1e-9);
  return i === -1 ? BOUNDS_MS.length : i;
}

function summary(valuesS: number[]) {
  const buckets = new Array(BOUNDS_MS.length + 1).fill(0);
  for (const v of valuesS) buckets[bucketOf(v)]++;
  return {
    count: valuesS.length,
    sum: valuesS.reduce((a, b) => a + b, 0),
    min: Math.min(...valuesS),
    max: Math.max(...valuesS),
    buckets,
  };
}

Deno.test("a flush records the same count, sum, min, max and buckets as direct recording", () => {
  const durationsMs = [0, 0, 0, 1, 2, 3, 4.5, 5, 7, 9, 12, 24, 25, 26, 300, 0.5];
  const buffer = new TimingBuffer(BOUNDS_MS);
  for (const ms of durationsMs) buffer.add(ms);
  const out = sink();
  buffer.flushTo(out, {});
  const got = summary(out.values);
  const want = summary(durationsMs.map((ms) => ms / 1000));
  assert.equal(got.count, want.count);
  assert.ok(Math.abs(got.sum - want.sum) < 1e-12, `sum ${got.sum} vs ${want.sum}`);
  assert.equal(got.min, want.min);
  assert.equal(got.max, want.max);
  assert.deepEqual(got.buckets, want.buckets);
});

Deno.test("a flush passes the attributes with every value", () => {
  const buffer = new TimingBuffer(BOUNDS_MS);
  buffer.add(3);
  buffer.add(30);
  const attributes = { "db.client.connection.pool.name": "p" };
  const seen: unknown[] = [];
  buffer.flushTo({ record: (_v, a) => void seen.push(a) }, attributes);
  assert.deepEqual(seen, [attributes, attributes]);
});

Deno.test("a flush empties the buffer, so nothing is recorded twice", () => {
  const buffer = new TimingBuffer(BOUNDS_MS);
  buffer.add(2);
  assert.equal(buffer.pending, 1);
  buffer.flushTo(sink(), {});
  assert.equal(buffer.pending, 0);
  const again = sink();
  buffer.flushTo(again, {});
  assert.deepEqual(again.values, []);
});

Deno.test("values on a bound fall in that bound's bucket, as OpenTelemetry's inclusive bounds", () => {
  const buffer = new TimingBuffer(BOUNDS_MS);
  for (const ms of [5, 5, 5]) buffer.add(ms);
  const out = sink();
  buffer.flushTo(out, {});
  assert.deepEqual(out.values, [0.005, 0.005, 0.005]);
});

Deno.test("bounds that do not ascend are a RangeError naming them", () => {
  assert.throws(
    () => new TimingBuffer([1, 5, 5]),
    (e: unknown) => e instanceof RangeError && e.message.includes("1, 5, 5"),
  );
});

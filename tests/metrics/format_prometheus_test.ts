import { test } from "../pool/sanitized.ts";
import assert from "node:assert/strict";
import { formatPrometheus, PROMETHEUS_CONTENT_TYPE } from "../../pool/metrics.ts";
import type { HistogramSnapshot, PoolStats } from "../../pool/types.ts";
import { type Family, parseExposition } from "./prometheus_text.ts";
import { hasPromtool, promtoolCheckMetrics } from "./promtool.ts";

/** A hand-made snapshot; every counter has a distinct value so mix-ups show. */
/** A snapshot with these bounds, cumulative counts and sum (the Prometheus format reads no more). */
function histogram(bucketsMs: number[], counts: number[], sumMs: number): HistogramSnapshot {
  const count = counts.at(-1) ?? 0;
  const sumsMs = [...bucketsMs.map(() => 0), 0];
  sumsMs[0] = sumMs;
  return { bucketsMs, counts, count, sumMs, sumsMs, minMs: 0, maxMs: 0 };
}

function stats(overrides: Partial<PoolStats> = {}): PoolStats {
  return {
    name: "hsm",
    state: "open",
    min: 1,
    max: 4,
    maxIdle: 4,
    size: 3,
    idle: 1,
    inUse: 2,
    pending: 5,
    creating: 1,
    created: 11,
    destroyed: 8,
    acquired: 101,
    released: 99,
    timedOut: 3,
    aborted: 4,
    createErrors: 6,
    leaks: 7,
    errors: 2,
    breaker: "closed",
    acquireWaitMs: { p50: 0.5, p99: 40, max: 120 },
    acquireWaitHistogram: {
      bucketsMs: [1, 2.5, 5, 10, 100, 1000],
      counts: [60, 70, 80, 90, 100, 101],
      count: 101,
      sumMs: 1234.5,
      sumsMs: [20, 40, 100, 200, 500, 374.5, 0],
      minMs: 0.1,
      maxMs: 900,
    },
    createTimeHistogram: histogram([1, 10], [1, 2], 7),
    useTimeHistogram: histogram([1, 10], [50, 99], 300),
    ...overrides,
  };
}

function value(families: Map<string, Family>, name: string, labels: Record<string, string>) {
  const sampleName = name;
  const family = families.get(name) ?? families.get(name.replace(/_(bucket|sum|count)$/, ""));
  assert.ok(family, `family of ${name} exists`);
  const hits = family.samples.filter((s) =>
    s.name === sampleName &&
    Object.keys(labels).length === Object.keys(s.labels).length &&
    Object.entries(labels).every(([k, v]) => s.labels[k] === v)
  );
  assert.equal(hits.length, 1, `exactly one ${name}${JSON.stringify(labels)}`);
  return hits[0].value;
}

test("the output is strictly valid exposition text with one HELP and TYPE per family", () => {
  const families = parseExposition(formatPrometheus([stats()]));
  assert.ok(families.size >= 17);
  for (const family of families.values()) assert.notEqual(family.help, "");
});

test("gauges carry size, idle, in use, pending, creating, min and max", () => {
  const f = parseExposition(formatPrometheus([stats()]));
  const pool = { pool: "hsm" };
  for (const name of ["size", "idle", "in_use", "pending", "creating", "min_size", "max_size"]) {
    assert.equal(f.get(`pool_${name}`)?.type, "gauge", name);
  }
  assert.equal(value(f, "pool_size", pool), 3);
  assert.equal(value(f, "pool_idle", pool), 1);
  assert.equal(value(f, "pool_in_use", pool), 2);
  assert.equal(value(f, "pool_pending", pool), 5);
  assert.equal(value(f, "pool_creating", pool), 1);
  assert.equal(value(f, "pool_min_size", pool), 1);
  assert.equal(value(f, "pool_max_size", pool), 4);
});

test("counters end in _total and carry the traffic counters", () => {
  const f = parseExposition(formatPrometheus([stats()]));
  const expected: Record<string, number> = {
    pool_created_total: 11,
    pool_destroyed_total: 8,
    pool_acquired_total: 101,
    pool_released_total: 99,
    pool_acquire_timeouts_total: 3,
    pool_acquire_aborted_total: 4,
    pool_create_errors_total: 6,
    pool_leaks_total: 7,
    pool_errors_total: 2,
  };
  for (const [name, v] of Object.entries(expected)) {
    assert.equal(f.get(name)?.type, "counter", name);
    assert.equal(value(f, name, { pool: "hsm" }), v, name);
  }
});

test("acquire wait is a histogram in seconds with a +Inf bucket equal to the count", () => {
  const f = parseExposition(formatPrometheus([stats()]));
  const h = f.get("pool_acquire_wait_seconds");
  assert.equal(h?.type, "histogram");
  const buckets = h.samples.filter((s) => s.name.endsWith("_bucket"));
  assert.deepEqual(
    buckets.map((s) => [s.labels.le, s.value]),
    [
      ["0.001", 60],
      ["0.0025", 70],
      ["0.005", 80],
      ["0.01", 90],
      ["0.1", 100],
      ["1", 101],
      ["+Inf", 101],
    ],
  );
  assert.equal(value(f, "pool_acquire_wait_seconds_sum", { pool: "hsm" }), 1.2345);
  assert.equal(value(f, "pool_acquire_wait_seconds_count", { pool: "hsm" }), 101);
});

test("create time and use time are histograms in seconds, like acquire wait", () => {
  const f = parseExposition(formatPrometheus([stats()]));
  const buckets = (name: string) =>
    f.get(name)!.samples.filter((s) => s.name.endsWith("_bucket"))
      .map((s) => `${s.labels.le}:${s.value}`);
  assert.equal(f.get("pool_create_time_seconds")?.type, "histogram");
  assert.deepEqual(buckets("pool_create_time_seconds"), ["0.001:1", "0.01:2", "+Inf:2"]);
  assert.equal(value(f, "pool_create_time_seconds_sum", { pool: "hsm" }), 0.007);
  assert.equal(value(f, "pool_create_time_seconds_count", { pool: "hsm" }), 2);
  assert.equal(f.get("pool_use_time_seconds")?.type, "histogram");
  assert.deepEqual(buckets("pool_use_time_seconds"), ["0.001:50", "0.01:99", "+Inf:99"]);
  assert.equal(value(f, "pool_use_time_seconds_sum", { pool: "hsm" }), 0.3);
  assert.equal(value(f, "pool_use_time_seconds_count", { pool: "hsm" }), 99);
});

test("a histogram whose last bucket is Infinity gets a single +Inf bucket", () => {
  const s = stats({
    acquireWaitHistogram: histogram([1, Infinity], [1, 2], 3),
  });
  const h = parseExposition(formatPrometheus([s])).get("pool_acquire_wait_seconds")!;
  assert.deepEqual(
    h.samples.filter((x) => x.name.endsWith("_bucket")).map((x) => x.labels.le),
    ["0.001", "+Inf"],
  );
});

test("breaker state is one gauge per state, 1 for the current state", () => {
  for (const current of ["closed", "open", "half-open"] as const) {
    const f = parseExposition(formatPrometheus([stats({ breaker: current })]));
    assert.equal(f.get("pool_breaker_state")?.type, "gauge");
    for (const state of ["closed", "open", "half-open"]) {
      const v = value(f, "pool_breaker_state", { pool: "hsm", state });
      assert.equal(v, state === current ? 1 : 0, `${current}: ${state}`);
    }
  }
});

test("pool lifecycle state is one gauge per state, 1 for the current state", () => {
  const f = parseExposition(formatPrometheus([stats({ state: "closing" })]));
  assert.equal(value(f, "pool_state", { pool: "hsm", state: "open" }), 0);
  assert.equal(value(f, "pool_state", { pool: "hsm", state: "closing" }), 1);
  assert.equal(value(f, "pool_state", { pool: "hsm", state: "closed" }), 0);
});

test("pool names with quotes, backslashes and line feeds are escaped in the label", () => {
  const name = 'a "quoted"\\ name\nwith a line feed';
  const text = formatPrometheus([stats({ name })]);
  assert.ok(text.includes('pool="a \\"quoted\\"\\\\ name\\nwith a line feed"'));
  const f = parseExposition(text);
  assert.equal(value(f, "pool_in_use", { pool: name }), 2);
});

test("several pools share each family's header and get a series each", () => {
  const text = formatPrometheus([stats({ name: "hsm" }), stats({ name: "db", inUse: 9 })]);
  assert.equal(text.match(/^# TYPE pool_in_use gauge$/gm)?.length, 1);
  const f = parseExposition(text);
  assert.equal(value(f, "pool_in_use", { pool: "hsm" }), 2);
  assert.equal(value(f, "pool_in_use", { pool: "db" }), 9);
});

test("anything with a stats() method can be formatted", () => {
  const source = { stats: () => stats({ name: "custom" }) };
  const f = parseExposition(formatPrometheus([source]));
  assert.equal(value(f, "pool_acquired_total", { pool: "custom" }), 101);
});

test("a custom prefix renames every family", () => {
  const f = parseExposition(formatPrometheus([stats()], { prefix: "hsm_session" }));
  assert.ok(f.has("hsm_session_in_use"));
  assert.ok(f.has("hsm_session_acquire_wait_seconds"));
  assert.ok([...f.keys()].every((name) => name.startsWith("hsm_session_")));
});

test("an invalid prefix is a TypeError naming it", () => {
  assert.throws(
    () => formatPrometheus([stats()], { prefix: "9 bad" }),
    (e: unknown) => e instanceof TypeError && e.message.includes('"9 bad"'),
  );
});

test("two pools with the same name are a TypeError naming the name", () => {
  assert.throws(
    () => formatPrometheus([stats({ name: "twin" }), stats({ name: "twin" })]),
    (e: unknown) => e instanceof TypeError && e.message.includes('"twin"'),
  );
});

test("no pools gives empty families that still parse as text", () => {
  const text = formatPrometheus([]);
  assert.ok(text.endsWith("\n"));
  assert.match(text, /^# TYPE pool_in_use gauge$/m);
});

test("the content type is text exposition version 0.0.4", () => {
  assert.equal(PROMETHEUS_CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
});

test({
  name: "promtool check metrics accepts the output",
  ignore: !hasPromtool,
  async fn() {
    const text = formatPrometheus([
      stats({ name: "hsm" }),
      stats({ name: 'odd "name"\\', breaker: "open", state: "closing" }),
    ]);
    const { code, output } = await promtoolCheckMetrics(text);
    assert.equal(code, 0, output);
    assert.equal(output.trim(), "");
  },
});

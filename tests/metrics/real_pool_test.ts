import { test } from "../pool/sanitized.ts";
import assert from "node:assert/strict";
import { Pool } from "../../mod.ts";
import { formatPrometheus } from "../../pool/metrics.ts";
import { parseExposition } from "./prometheus_text.ts";
import { hasPromtool, promtoolCheckMetrics } from "./promtool.ts";

async function busyPool(): Promise<Pool<{ n: number }>> {
  let n = 0;
  const pool = new Pool({ name: "real", create: () => Promise.resolve({ n: n++ }), max: 2 });
  await Promise.all(Array.from({ length: 10 }, () => pool.use(() => Promise.resolve())));
  return pool;
}

test("a real Pool's metrics parse strictly and count its traffic", async () => {
  await using pool = await busyPool();
  const lease = await pool.acquire();
  let text: string;
  try {
    text = formatPrometheus([pool]);
  } finally {
    await lease.release();
  }
  const f = parseExposition(text);
  const value = (name: string) =>
    (f.get(name) ?? f.get(name.replace(/_count$/, "")))?.samples
      .find((s) => s.name === name && s.labels.pool === "real")?.value;
  assert.equal(value("pool_acquired_total"), 11);
  assert.equal(value("pool_released_total"), 10);
  assert.equal(value("pool_in_use"), 1);
  assert.equal(value("pool_max_size"), 2);
  assert.equal(value("pool_acquire_wait_seconds_count"), 11);
  assert.equal(value("pool_create_time_seconds_count"), 2, "max 2: two creates");
  assert.equal(value("pool_use_time_seconds_count"), 10, "the held lease is not counted yet");
});

test({
  name: "promtool check metrics accepts a real Pool's metrics",
  ignore: !hasPromtool,
  async fn() {
    await using pool = await busyPool();
    const { code, output } = await promtoolCheckMetrics(formatPrometheus([pool]));
    assert.equal(code, 0, output);
  },
});

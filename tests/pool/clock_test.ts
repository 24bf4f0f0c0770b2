import { test } from "./sanitized.ts";
import assert from "node:assert/strict";
import { Pool, PoolTimeoutError } from "../../mod.ts";
import { FakeFactory } from "./fake.ts";

// Real time on purpose: these pin that the pool never reads the wall clock.

test("a wall clock stepping back does not push an acquire deadline back", async () => {
  const realNow = Date.now;
  await using pool = new Pool({ ...new FakeFactory().hooks, max: 1 });
  await using _held = await pool.acquire();
  try {
    Date.now = () => realNow() - 2_000; // an NTP step back of 2 s
    const error = await pool.acquire({ timeoutMs: 50 }).catch((e) => e);
    assert.ok(error instanceof PoolTimeoutError);
    assert.ok(error.waitedMs < 1_000, `waited ${error.waitedMs} ms`);
    assert.match(error.message, /within 50 ms/);
  } finally {
    Date.now = realNow;
  }
});

test("a wall clock stepping forward does not expire idle resources or leases", async () => {
  const realNow = Date.now;
  const factory = new FakeFactory();
  await using pool = new Pool({ ...factory.hooks, maxLifetimeMs: 60_000, leakDetectionMs: 60_000 });
  await (await pool.acquire()).release();
  try {
    Date.now = () => realNow() + 3_600_000; // an hour ahead
    await using lease = await pool.acquire();
    assert.equal(lease.resource.id, 1);
    assert.equal(pool.stats().leaks, 0);
  } finally {
    Date.now = realNow;
  }
});

test("a lease held by synchronous work counts that work in its use time", async () => {
  await using pool = new Pool({ ...new FakeFactory().hooks });
  await (await pool.acquire()).release();
  const lease = await pool.acquire();
  const until = performance.now() + 30;
  while (performance.now() < until) { /* a synchronous hold, as a native call would be */ }
  await lease.release();
  const { useTimeHistogram } = pool.stats();
  assert.ok(useTimeHistogram.sumMs >= 29, `${useTimeHistogram.sumMs} ms`);
});

import { test } from "./sanitized.ts";
import assert from "node:assert/strict";
import { Pool } from "../../mod.ts";
import { FakeFactory } from "./fake.ts";
import { fakeClock } from "./fake_clock.ts";

// A user's own test, as they would write it: twice in a row, so that neither leaks into the other.
for (const run of ["first", "second"]) {
  Deno.test({
    name: `a user's sanitized test around new Pool, use() and close() passes (${run} run)`,
    sanitizeOps: true,
    sanitizeResources: true,
    async fn() {
      const pool = new Pool({ create: () => Promise.resolve({ id: 1 }), max: 2 });
      assert.equal(await pool.use((r) => r.id), 1);
      await pool.close();
    },
  });
}

test("while a pool is open and nobody waits, its housekeeping timer is its only timer", async () => {
  const clock = fakeClock();
  await using pool = clock.pool({
    ...new FakeFactory().hooks,
    min: 2,
    validate: () => true,
    healthCheckIntervalMs: 1_000,
    leakDetectionMs: 500,
  });
  await pool.ready();
  await pool.use(() => {});
  await clock.advance(5_000);
  assert.equal(clock.pendingTimers, 1);
});

test("after close() resolves, nothing of the pool is scheduled, whatever was under way", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  const pool = clock.pool({
    ...factory.hooks,
    max: 2,
    validate: () => new Promise<boolean>(() => {}), // never answers
    healthCheckIntervalMs: 1_000,
    breaker: { threshold: 100 },
  });
  const held = await pool.acquire();
  await (await pool.acquire()).release();
  await clock.advance(1_000); // a health check hangs on the idle one
  factory.failWith = new Error("down");
  const waiting = pool.acquire({ timeoutMs: 60_000 }).catch((e) => e); // a waiter with a deadline
  await clock.advance(10);
  const closed = pool.close({ timeoutMs: 1_000 });
  await clock.advance(1_000); // the lease is never given back: the deadline forces the close
  await closed;
  await waiting;
  assert.equal(clock.pendingTimers, 0);
  await held.release();
  assert.equal(clock.pendingTimers, 0);
});

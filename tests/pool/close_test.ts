import { test } from "./sanitized.ts";
import assert from "node:assert/strict";
import { Pool, PoolClosedError } from "../../mod.ts";
import { delay, FakeFactory, settle } from "./fake.ts";

test("close() rejects waiting callers with PoolClosedError", async () => {
  const pool = new Pool({ ...new FakeFactory().hooks, max: 1 });
  const held = await pool.acquire();
  const waiting = pool.acquire();
  const closed = pool.close();
  await assert.rejects(waiting, PoolClosedError);
  await held.release();
  await closed;
});

test("close() waits for lent resources to come back, then destroys them", async () => {
  const factory = new FakeFactory();
  const pool = new Pool({ ...factory.hooks });
  const lease = await pool.acquire();
  let closed = false;
  const closing = pool.close().then(() => closed = true);
  await delay(10);
  assert.equal(closed, false);
  assert.equal(pool.stats().state, "closing");
  await lease.release();
  await closing;
  assert.equal(factory.made[0].alive, false);
  assert.equal(pool.stats().state, "closed");
});

test("close({ timeoutMs }) destroys what is still lent out and resolves", async () => {
  const factory = new FakeFactory();
  const pool = new Pool({ ...factory.hooks });
  const lease = await pool.acquire();
  await pool.close({ timeoutMs: 20 });
  assert.equal(factory.made[0].alive, false);
  assert.equal(lease.active, false);
  await lease.release(); // late release is harmless
  assert.equal(pool.stats().destroyed, 1);
});

test("after close every created resource has been destroyed", async () => {
  const factory = new FakeFactory();
  const pool = new Pool({ ...factory.hooks, min: 2, max: 5 });
  await Promise.all([1, 2, 3, 4].map(() => pool.use(() => delay(1))));
  await pool.close();
  const { created, destroyed } = pool.stats();
  assert.equal(destroyed, created);
  assert.equal(factory.alive, 0);
});

test("a create that finishes during close is destroyed, and close waits for it", async () => {
  const factory = new FakeFactory();
  factory.holdCreates();
  const pool = new Pool({ ...factory.hooks });
  const waiting = pool.acquire();
  await settle();
  const closing = pool.close();
  await assert.rejects(waiting, PoolClosedError);
  factory.releaseCreates();
  await closing;
  assert.equal(factory.made.length, 1);
  assert.equal(factory.made[0].alive, false);
});

test("close() is idempotent", async () => {
  const pool = new Pool({ ...new FakeFactory().hooks });
  const first = pool.close();
  assert.equal(pool.close(), first);
  await first;
  await pool.close();
});

test("acquire after close rejects with PoolClosedError", async () => {
  const pool = new Pool({ ...new FakeFactory().hooks });
  await pool.close();
  await assert.rejects(pool.acquire(), PoolClosedError);
  await assert.rejects(pool.use(() => {}), PoolClosedError);
});

test("await using closes the pool at the end of the block", async () => {
  const factory = new FakeFactory();
  {
    await using pool = new Pool({ ...factory.hooks, min: 1 });
    await pool.ready();
  }
  assert.equal(factory.alive, 0);
});

test("an open, idle pool does not keep the process alive", async () => {
  const script = `
    import { Pool } from ${JSON.stringify(new URL("../../mod.ts", import.meta.url).href)};
    const pool = new Pool({ create: async () => ({}), min: 2, healthCheckIntervalMs: 50,
      validate: () => true, leakDetectionMs: 100 });
    await pool.ready();
    console.log("ready");`;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    signal: AbortSignal.timeout(20_000),
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(new TextDecoder().decode(output.stderr), "");
  assert.equal(output.code, 0);
  assert.equal(new TextDecoder().decode(output.stdout).trim(), "ready");
});

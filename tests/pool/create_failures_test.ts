import assert from "node:assert/strict";
import { CircuitOpenError, Pool, PoolTimeoutError } from "../../mod.ts";
import { BACKOFF_CAP_MS, backoffDelayMs } from "../../pool/backoff.ts";
import { delay, FakeFactory, settle, until } from "./fake.ts";

Deno.test("retry delays start at most 100 ms, double, and stop at the cap", () => {
  const most = (attempt: number) => backoffDelayMs(attempt, () => 1);
  const least = (attempt: number) => backoffDelayMs(attempt, () => 0);
  assert.equal(most(1), 100);
  assert.equal(most(2), 200);
  assert.equal(most(3), 400);
  assert.equal(least(1), 50);
  assert.equal(most(20), BACKOFF_CAP_MS);
  assert.ok(BACKOFF_CAP_MS <= 5_000);
});

Deno.test("with the defaults a dead backend opens the breaker within about two seconds", () => {
  // Five failures in a row open it; four backoff delays separate them.
  const worstCaseMs = [1, 2, 3, 4].reduce(
    (sum, attempt) => sum + backoffDelayMs(attempt, () => 1),
    0,
  );
  assert.ok(worstCaseMs <= 2_000, `${worstCaseMs} ms`);
});

Deno.test("a short outage is invisible: failed creates are retried inside the caller's deadline", async () => {
  const factory = new FakeFactory();
  factory.failWith = new Error("connection refused");
  await using pool = new Pool({ ...factory });
  const waiting = pool.acquire({ timeoutMs: 10_000 });
  await until(() => factory.createCalls >= 2, "two failed creates");
  factory.failWith = undefined;
  await using lease = await waiting;
  assert.equal(lease.resource.id, 1);
  assert.equal(pool.stats().createErrors, 2);
});

Deno.test("a caller whose deadline passes gets PoolTimeoutError caused by the last create failure", async () => {
  const factory = new FakeFactory();
  const failure = new Error("password authentication failed for user app");
  factory.failWith = failure;
  await using pool = new Pool({ ...factory, breaker: false });
  const error = await pool.acquire({ timeoutMs: 80 }).catch((e) => e);
  assert.ok(error instanceof PoolTimeoutError);
  assert.equal(error.cause, failure);
  assert.match(error.message, /create attempt\(s\) failed, see cause/);
});

Deno.test("a failing create does not strand the other waiters", async () => {
  const factory = new FakeFactory();
  factory.failWith = new Error("flaky");
  await using pool = new Pool({ ...factory, max: 2 });
  const waiting = [1, 2, 3].map(() => pool.acquire({ timeoutMs: 10_000 }));
  await until(() => factory.createCalls >= 1, "a failed create");
  factory.failWith = undefined;
  const leases = await Promise.all(waiting.slice(0, 2));
  await leases[0].release();
  const third = await waiting[2];
  await third.release();
  await leases[1].release();
  assert.equal(pool.stats().inUse, 0);
});

Deno.test("a failed create alone rejects nobody", async () => {
  const factory = new FakeFactory();
  factory.failWith = new Error("down");
  await using pool = new Pool({ ...factory, breaker: { threshold: 100 } });
  const waiting = pool.acquire({ timeoutMs: 10_000 });
  let settledEarly = false;
  waiting.then(() => settledEarly = true, () => settledEarly = true);
  await until(() => factory.createCalls >= 2, "a retry");
  assert.equal(settledEarly, false);
  factory.failWith = undefined;
  await (await waiting).release();
});

async function openBreaker(factory: FakeFactory, cooldownMs: number) {
  factory.failWith = new Error("backend down");
  const pool = new Pool({ ...factory, breaker: { threshold: 2, cooldownMs } });
  await assert.rejects(pool.acquire({ timeoutMs: 10_000 }), CircuitOpenError);
  return pool;
}

Deno.test("after threshold failures in a row the breaker opens and the waiters fail with its cause", async () => {
  const factory = new FakeFactory();
  await using pool = await openBreaker(factory, 60_000);
  const stats = pool.stats();
  assert.equal(stats.breaker, "open");
  assert.equal(factory.createCalls, 2);
});

Deno.test("while open, a new acquire fails at once without calling create", async () => {
  const factory = new FakeFactory();
  await using pool = await openBreaker(factory, 60_000);
  const calls = factory.createCalls;
  let outcome: unknown;
  pool.acquire({ timeoutMs: 10_000 }).catch((e) => outcome = e);
  await settle();
  assert.ok(outcome instanceof CircuitOpenError);
  assert.equal(outcome.cause, factory.failWith);
  assert.ok(outcome.retryAfterMs > 50_000 && outcome.retryAfterMs <= 60_000);
  assert.equal(factory.createCalls, calls);
});

Deno.test("after the cooldown exactly one probe create runs (half-open)", async () => {
  const factory = new FakeFactory();
  await using pool = await openBreaker(factory, 30);
  await delay(40);
  factory.failWith = undefined;
  factory.holdCreates();
  const calls = factory.createCalls;
  const waiting = [1, 2, 3].map(() => pool.acquire({ timeoutMs: 10_000 }));
  await settle();
  assert.equal(pool.stats().breaker, "half-open");
  assert.equal(factory.createCalls, calls + 1);
  factory.releaseCreates();
  for (const lease of await Promise.all(waiting)) await lease.release();
});

Deno.test("a successful probe closes the breaker and serves the waiters", async () => {
  const factory = new FakeFactory();
  await using pool = await openBreaker(factory, 30);
  await delay(40);
  factory.failWith = undefined;
  await using lease = await pool.acquire({ timeoutMs: 10_000 });
  assert.equal(lease.resource.id, 1);
  assert.equal(pool.stats().breaker, "closed");
});

Deno.test("a failed probe opens the breaker again", async () => {
  const factory = new FakeFactory();
  await using pool = await openBreaker(factory, 30);
  await delay(40);
  await assert.rejects(pool.acquire({ timeoutMs: 10_000 }), CircuitOpenError);
  assert.equal(pool.stats().breaker, "open");
  assert.equal(factory.createCalls, 3);
});

Deno.test("breaker: false keeps retrying instead of failing fast", async () => {
  const factory = new FakeFactory();
  factory.failWith = new Error("down");
  await using pool = new Pool({ ...factory, breaker: false });
  await assert.rejects(pool.acquire({ timeoutMs: 400 }), PoolTimeoutError);
  assert.ok(factory.createCalls >= 3, `${factory.createCalls} creates`);
  assert.equal(pool.stats().breaker, "closed");
});

Deno.test("create failures are counted and streamed as events", async () => {
  const factory = new FakeFactory();
  factory.failWith = new Error("nope");
  await using pool = new Pool({ ...factory, breaker: { threshold: 1, cooldownMs: 60_000 } });
  const controller = new AbortController();
  const events = pool.events({ signal: controller.signal });
  await assert.rejects(pool.acquire(), CircuitOpenError);
  controller.abort();
  const types = [];
  for await (const event of events) types.push(event.type);
  assert.deepEqual(types, ["createError", "breaker"]);
  assert.equal(pool.stats().createErrors, 1);
});

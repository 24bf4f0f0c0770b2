import { test } from "./sanitized.ts";
import assert from "node:assert/strict";
import { CircuitOpenError, type Pool, type PoolEvent, PoolTimeoutError } from "../../mod.ts";
import { BACKOFF_CAP_MS, backoffDelayMs } from "../../pool/creator.ts";
import { fakeClock } from "./fake_clock.ts";
import { FakeFactory } from "./fake.ts";

/** Collects the events of a pool until the returned function is called. */
function record<R>(pool: Pool<R>): { events: PoolEvent[]; stop: () => Promise<void> } {
  const events: PoolEvent[] = [];
  const controller = new AbortController();
  const stream = pool.events({ signal: controller.signal });
  const reading = (async () => {
    for await (const event of stream) events.push(event);
  })();
  return { events, stop: () => (controller.abort(), reading) };
}

test("with no resource, retry delays start at most 100 ms, double, and stop at one second", () => {
  const most = (attempt: number) => backoffDelayMs(attempt, false, () => 1);
  const least = (attempt: number) => backoffDelayMs(attempt, false, () => 0);
  assert.equal(most(1), 100);
  assert.equal(most(2), 200);
  assert.equal(most(3), 400);
  assert.equal(least(1), 50);
  assert.equal(most(20), BACKOFF_CAP_MS);
  assert.equal(BACKOFF_CAP_MS, 1_000);
});

test("while resources serve callers, retry delays are half a second to a second from the first", () => {
  assert.equal(backoffDelayMs(1, true, () => 0), 500);
  assert.equal(backoffDelayMs(1, true, () => 1), 1_000);
  assert.equal(backoffDelayMs(5, true, () => 1), 1_000);
});

test("with the defaults a dead backend opens the breaker within about 1.5 s", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  factory.failWith = new Error("connection refused");
  await using pool = clock.pool({ ...factory.hooks });
  const outcome = pool.acquire({ timeoutMs: 60_000 }).catch((e) => e);
  await clock.advance(1_500);
  assert.ok(await outcome instanceof CircuitOpenError);
  assert.equal(factory.createCalls, 5);
});

test("a short outage is invisible: failed creates are retried inside the caller's deadline", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  factory.failWith = new Error("connection refused");
  await using pool = clock.pool({ ...factory.hooks });
  const waiting = pool.acquire({ timeoutMs: 10_000 });
  await clock.advance(150);
  assert.equal(factory.createCalls, 2);
  factory.failWith = undefined;
  await clock.advance(200);
  await using lease = await waiting;
  assert.equal(lease.resource.id, 1);
  assert.equal(pool.stats().createErrors, 2);
});

test("a create started before invalidate() that fails afterwards does not count against the fresh start", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  await using pool = clock.pool({
    ...factory.hooks,
    breaker: { threshold: 1, cooldownMs: 60_000 },
  });
  factory.failWith = new Error("password authentication failed");
  factory.holdCreates();
  const waiting = pool.acquire({ timeoutMs: 60_000 });
  await clock.advance(0);
  pool.invalidate(); // the operator fixed the password while the old attempt was under way
  factory.releaseCreates();
  await clock.advance(0);
  assert.equal(pool.stats().createErrors, 1);
  assert.equal(pool.stats().breaker, "closed");
  factory.failWith = undefined;
  await clock.advance(100);
  await (await waiting).release();
});

test("while creates fail, at most one is in flight whatever the number of callers", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  factory.failWith = new Error("connection refused");
  await using pool = clock.pool({ ...factory.hooks, max: 10, breaker: false });
  const outcomes = Array.from(
    { length: 50 },
    () => pool.acquire({ timeoutMs: 3_000 }).catch((e) => e),
  );
  await clock.advance(0);
  const first = factory.createCalls;
  factory.holdCreates();
  for (let t = 0; t < 2_000; t += 50) {
    await clock.advance(50);
    assert.ok(factory.heldCreates <= 1, `${factory.heldCreates} creates in flight`);
    factory.releaseCreates();
    factory.holdCreates();
  }
  factory.releaseCreates();
  assert.ok(first <= 10);
  await clock.advance(3_000);
  for (const outcome of await Promise.all(outcomes)) assert.ok(outcome instanceof PoolTimeoutError);
});

test("a failing backend sees at most threshold attempts per cooldown once the breaker is open", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  factory.failWith = new Error("connection refused");
  await using pool = clock.pool({
    ...factory.hooks,
    min: 2,
    breaker: { threshold: 5, cooldownMs: 5_000 },
  });
  await clock.advance(2_000);
  assert.equal(pool.stats().breaker, "open");
  const before = factory.createCalls;
  for (let i = 0; i < 200; i++) pool.acquire().catch(() => {});
  await clock.advance(10_000);
  assert.ok(factory.createCalls - before <= 10, `${factory.createCalls - before} attempts in 10 s`);
});

test("while the breaker is open, a new acquire fails at once without calling create", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  factory.failWith = new Error("backend down");
  await using pool = clock.pool({
    ...factory.hooks,
    breaker: { threshold: 2, cooldownMs: 60_000 },
  });
  const first = pool.acquire().catch((e) => e);
  await clock.advance(200);
  assert.ok(await first instanceof CircuitOpenError);
  const calls = factory.createCalls;
  const error = await pool.acquire().catch((e) => e);
  assert.ok(error instanceof CircuitOpenError);
  assert.equal(error.cause, factory.failWith);
  assert.ok(error.retryAfterMs > 29_800 && error.retryAfterMs <= 30_000, `${error.retryAfterMs}`);
  assert.equal(factory.createCalls, calls);
});

test("a backend that comes back is used within a second of its return", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  factory.failWith = new Error("backend down");
  await using pool = clock.pool({ ...factory.hooks, min: 1 });
  await clock.advance(10_000);
  assert.equal(pool.stats().breaker, "open");
  factory.failWith = undefined;
  await clock.advance(1_000);
  assert.equal(pool.stats().breaker, "closed");
  assert.equal(pool.stats().idle, 1);
});

test("a failed probe opens the breaker again and fails its waiters", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  factory.failWith = new Error("backend down");
  await using pool = clock.pool({ ...factory.hooks, breaker: { threshold: 2, cooldownMs: 2_000 } });
  const first = pool.acquire().catch((e) => e);
  await clock.advance(200);
  assert.ok(await first instanceof CircuitOpenError);
  await clock.advance(1_000);
  const calls = factory.createCalls;
  const probe = pool.acquire().catch((e) => e);
  await clock.advance(0);
  assert.equal(factory.createCalls, calls + 1);
  assert.ok(await probe instanceof CircuitOpenError);
  assert.equal(pool.stats().breaker, "open");
});

test("a permanent create failure opens the breaker at once, without a retry", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  factory.failWith = new Error("CKR_PIN_INCORRECT");
  await using pool = clock.pool({ ...factory.hooks, isPermanent: () => true });
  const error = await pool.acquire({ timeoutMs: 60_000 }).catch((e) => e);
  assert.ok(error instanceof CircuitOpenError);
  assert.equal(factory.createCalls, 1);
  await clock.advance(4_999);
  assert.equal(factory.createCalls, 1);
});

test("after a permanent failure every acquire fails at once until cooldownMs, then one probe runs", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  factory.failWith = new Error("CKR_PIN_INCORRECT");
  await using pool = clock.pool({ ...factory.hooks, isPermanent: () => true });
  await pool.acquire().catch(() => {});
  for (let t = 0; t < 4_900; t += 700) {
    await clock.advance(700);
    await assert.rejects(pool.acquire(), CircuitOpenError);
  }
  assert.equal(factory.createCalls, 1);
  await clock.advance(200);
  await assert.rejects(pool.acquire(), CircuitOpenError);
  assert.equal(factory.createCalls, 2);
});

test("the CircuitOpenError of a permanent failure carries its message and says what to do", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  factory.failWith = new Error("C_Login failed: CKR_PIN_INCORRECT");
  await using pool = clock.pool({ ...factory.hooks, name: "hsm", isPermanent: () => true });
  const error = await pool.acquire().catch((e) => e);
  assert.ok(error instanceof CircuitOpenError);
  assert.match(error.message, /CKR_PIN_INCORRECT/);
  assert.match(error.message, /permanent/);
  assert.match(error.message, /invalidate\(\)/);
  assert.equal(error.cause, factory.failWith);
});

test("the CircuitOpenError of failures in a row carries the last failure's message", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  factory.failWith = new Error("password authentication failed for user app");
  await using pool = clock.pool({ ...factory.hooks, breaker: { threshold: 1 } });
  const outcome = pool.acquire().catch((e) => e);
  await clock.advance(0);
  const error = await outcome;
  assert.ok(error instanceof CircuitOpenError);
  assert.match(error.message, /password authentication failed for user app/);
});

test("invalidate() after a permanent failure lets the next acquire try at once", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  factory.failWith = new Error("password authentication failed");
  await using pool = clock.pool({ ...factory.hooks, isPermanent: () => true });
  await assert.rejects(pool.acquire(), CircuitOpenError);
  factory.failWith = undefined; // the operator fixed the password
  pool.invalidate();
  assert.equal(pool.stats().breaker, "closed");
  await using lease = await pool.acquire();
  assert.equal(lease.resource.id, 1);
  assert.equal(factory.createCalls, 2);
});

test("a caller whose deadline passes gets PoolTimeoutError carrying the last create failure", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  const failure = new Error("password authentication failed for user app");
  factory.failWith = failure;
  await using pool = clock.pool({ ...factory.hooks, breaker: false });
  const outcome = pool.acquire({ timeoutMs: 80 }).catch((e) => e);
  await clock.advance(100);
  const error = await outcome;
  assert.ok(error instanceof PoolTimeoutError);
  assert.equal(error.cause, failure);
  assert.match(error.message, /no resource within 80 ms .*password authentication failed/);
});

test("a failed create alone rejects nobody", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  factory.failWith = new Error("down");
  await using pool = clock.pool({ ...factory.hooks, breaker: { threshold: 100 } });
  let settled = false;
  const waiting = pool.acquire({ timeoutMs: 10_000 }).finally(() => settled = true);
  await clock.advance(3_000);
  assert.equal(settled, false);
  factory.failWith = undefined;
  await clock.advance(1_000);
  await (await waiting).release();
});

test("a failed background create (top-up to min) is an error event and a counter", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  factory.failWith = new Error("down");
  await using pool = clock.pool({ ...factory.hooks, min: 1, breaker: false });
  const { events, stop } = record(pool);
  await clock.advance(0);
  await stop();
  assert.ok(events.some((e) => e.type === "error" && e.during === "create"));
  assert.ok(events.some((e) => e.type === "createError"));
  assert.equal(pool.stats().errors, 1);
});

test("create failures are counted and streamed as events", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  factory.failWith = new Error("nope");
  await using pool = clock.pool({
    ...factory.hooks,
    breaker: { threshold: 1, cooldownMs: 60_000 },
  });
  const { events, stop } = record(pool);
  await assert.rejects(pool.acquire(), CircuitOpenError);
  await stop();
  assert.deepEqual(events.map((e) => e.type), ["createError", "breaker"]);
  assert.equal(pool.stats().createErrors, 1);
});

test("with breaker: false a permanent failure still fails callers fast for the default cooldown", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  factory.failWith = new Error("password authentication failed");
  await using pool = clock.pool({ ...factory.hooks, breaker: false, isPermanent: () => true });
  await assert.rejects(pool.acquire(), CircuitOpenError);
  await clock.advance(4_000);
  await assert.rejects(pool.acquire(), CircuitOpenError);
  assert.equal(factory.createCalls, 1);
});

test("an isPermanent that throws counts the failure as transient and reports the throw", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  factory.failWith = new Error("down");
  await using pool = clock.pool({
    ...factory.hooks,
    isPermanent: () => {
      throw new Error("classifier bug");
    },
  });
  const waiting = pool.acquire({ timeoutMs: 10_000 });
  await clock.advance(0);
  factory.failWith = undefined;
  await clock.advance(200);
  await (await waiting).release();
  assert.equal(pool.stats().errors, 1);
});

test("after a permanent failure the top-up to min never probes on its own; a caller's acquire does", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  factory.failWith = new Error("CKR_PIN_INCORRECT");
  await using pool = clock.pool({ ...factory.hooks, min: 2, isPermanent: () => true });
  await clock.advance(0);
  const first = factory.createCalls;
  await clock.advance(60_000);
  assert.equal(factory.createCalls, first);
  factory.failWith = undefined;
  await using lease = await pool.acquire();
  assert.equal(lease.resource.id, 1); // the probe the caller's acquire started
  assert.equal(pool.stats().breaker, "closed");
});

test("one create at a time: ten callers at a backend that refuses ask it once", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  factory.failWith = new Error("password authentication failed");
  factory.holdCreates();
  await using pool = clock.pool({ ...factory.hooks, max: 10, isPermanent: () => true });
  const outcomes = Array.from({ length: 10 }, () => pool.acquire().catch((e) => e));
  await clock.advance(0);
  assert.equal(factory.heldCreates, 1, "one create, not max at once");
  factory.releaseCreates();
  await clock.advance(10);
  for (const outcome of await Promise.all(outcomes)) assert.ok(outcome instanceof CircuitOpenError);
  assert.equal(pool.stats().createErrors, 1);
});

test("a burst of callers gets its resources created one after another, never side by side", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  factory.holdCreates();
  await using pool = clock.pool({ ...factory.hooks, max: 10 });
  const leases = Array.from({ length: 5 }, () => pool.acquire());
  for (let made = 0; made < 5; made++) {
    await clock.advance(0);
    assert.equal(factory.heldCreates, 1, `one create in flight after ${made} made`);
    factory.releaseCreates();
    factory.holdCreates(); // hold the next one, to count it
  }
  factory.releaseCreates();
  for (const lease of await Promise.all(leases)) await lease.release();
  assert.equal(pool.stats().size, 5);
});

test("after resources broke, the next creates still run one at a time", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  await using pool = clock.pool({ ...factory.hooks, max: 10 });
  const alive = await pool.acquire(); // stays alive: the pool is not empty
  await (await pool.acquire()).destroy("the connection broke");
  factory.failWith = new Error("password authentication failed");
  factory.holdCreates();
  const outcomes = Array.from({ length: 9 }, () => pool.acquire({ timeoutMs: 50 }).catch((e) => e));
  await clock.advance(0);
  assert.equal(factory.heldCreates, 1, "one attempt, not nine at once");
  factory.releaseCreates();
  await clock.advance(100);
  await Promise.all(outcomes);
  await alive.release();
});

test("a failed background create is an error event also while someone awaits ready()", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  factory.failWith = new Error("down");
  await using pool = clock.pool({ ...factory.hooks, min: 2, breaker: false });
  const { events, stop } = record(pool);
  const ready = pool.ready({ timeoutMs: 10_000 });
  await clock.advance(0);
  factory.failWith = undefined;
  await clock.advance(1_000);
  await ready;
  await stop();
  assert.ok(pool.stats().createErrors >= 1);
  assert.equal(
    events.filter((e) => e.type === "error" && e.during === "create").length,
    pool.stats().createErrors,
  );
});

test("a full backend (too many clients) while a resource serves: one attempt, then one per half second to a second", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  await using pool = clock.pool({ ...factory.hooks, max: 10, breaker: { threshold: 100 } });
  const held = await pool.acquire();
  factory.failWith = new Error("sorry, too many clients already (53300)");
  const outcomes = Array.from(
    { length: 9 },
    () => pool.acquire({ timeoutMs: 3_000 }).catch((e) => e),
  );
  await clock.advance(0);
  assert.equal(factory.createCalls, 2, "one attempt for nine callers");
  await clock.advance(499);
  assert.equal(factory.createCalls, 2, "no retry within half a second");
  await clock.advance(1_501);
  const retries = factory.createCalls - 2;
  assert.ok(retries >= 1 && retries <= 3, `${retries} retries in the next 1.5 s`);
  await held.release(); // a caller gets it; the others wait within their own deadline
  await clock.advance(1_100);
  const settled = await Promise.all(outcomes);
  const served = settled.filter((o) => !(o instanceof Error));
  assert.ok(served.length >= 1);
  assert.ok(settled.every((o) => !(o instanceof CircuitOpenError)));
  for (const lease of served) await lease.release();
});

/**
 * A pool on a fake clock with one resource lent out (`held`), whose creates fail from then
 * on, the first failure opening the breaker for a minute. Disposing of it closes the pool.
 */
async function oneLentThenFailing(max: number) {
  const clock = fakeClock();
  const factory = new FakeFactory();
  const pool = clock.pool({ ...factory.hooks, max, breaker: { threshold: 1, cooldownMs: 60_000 } });
  const held = await pool.acquire();
  factory.failWith = new Error("password authentication failed");
  return { clock, pool, held, [Symbol.asyncDispose]: () => pool.close() };
}

test("while resources exist, an open breaker lets waiting callers wait for them within their deadline", async () => {
  await using setup = await oneLentThenFailing(3);
  const { clock, pool, held } = setup;
  const waiting = pool.acquire({ timeoutMs: 5_000 });
  await clock.advance(10);
  assert.equal(pool.stats().breaker, "open");
  const later = pool.acquire({ timeoutMs: 5_000 }); // queues too: a resource exists
  await clock.advance(1_000);
  await held.release();
  const lease = await waiting;
  assert.equal(lease.resource.id, 1);
  await lease.release();
  await (await later).release();
});

test("when the last resource goes while the breaker is open, waiting callers fail fast", async () => {
  await using setup = await oneLentThenFailing(2);
  const { clock, pool, held } = setup;
  const waiting = pool.acquire({ timeoutMs: 30_000 }).catch((e) => e);
  await clock.advance(10);
  assert.equal(pool.stats().breaker, "open");
  await held.destroy("the connection broke");
  await clock.advance(0);
  assert.ok(await waiting instanceof CircuitOpenError);
});

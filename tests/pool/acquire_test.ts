import { test } from "./sanitized.ts";
import assert from "node:assert/strict";
import { Pool, PoolError, PoolOverloadedError, PoolTimeoutError } from "../../mod.ts";
import { delay, FakeFactory, settle } from "./fake.ts";
import { fakeClock } from "./fake_clock.ts";

test("an idle resource is lent again instead of creating a new one", async () => {
  const factory = new FakeFactory();
  await using pool = new Pool({ ...factory.hooks, max: 3 });
  const first = await pool.acquire();
  const id = first.resource.id;
  await first.release();
  await using second = await pool.acquire();
  assert.equal(second.resource.id, id);
  assert.equal(factory.createCalls, 1);
});

test("never more than max resources are alive or being created", async () => {
  const factory = new FakeFactory();
  factory.createDelayMs = 2;
  await using pool = new Pool({ ...factory.hooks, max: 3 });
  let peak = 0;
  await Promise.all(Array.from({ length: 40 }, () =>
    pool.use(async () => {
      const { size, creating } = pool.stats();
      peak = Math.max(peak, size + creating);
      await delay(1);
    })));
  assert.equal(factory.made.length, 3);
  assert.ok(peak <= 3, `peak ${peak}`);
});

test("waiters are served in the order they arrived", async () => {
  const factory = new FakeFactory();
  await using pool = new Pool({ ...factory.hooks, max: 1 });
  const held = await pool.acquire();
  const order: number[] = [];
  const waits = [1, 2, 3, 4].map((n) =>
    pool.acquire().then(async (lease) => {
      order.push(n);
      await lease.release();
    })
  );
  await held.release();
  await Promise.all(waits);
  assert.deepEqual(order, [1, 2, 3, 4]);
});

test("a new caller does not overtake callers already waiting", async () => {
  const factory = new FakeFactory();
  await using pool = new Pool({ ...factory.hooks, max: 1 });
  const held = await pool.acquire();
  const waiting = pool.acquire();
  await held.release(); // goes to the waiter, not to idle
  const late = pool.acquire({ timeoutMs: 20 });
  await assert.rejects(late, PoolTimeoutError);
  await (await waiting).release();
});

test("an already aborted signal rejects with its reason, unchanged", async () => {
  await using pool = new Pool({ ...new FakeFactory().hooks });
  const reason = new Error("caller gave up");
  await assert.rejects(pool.acquire({ signal: AbortSignal.abort(reason) }), (e) => e === reason);
});

test("an aborted waiter leaves the queue at once with the signal's reason", async () => {
  await using pool = new Pool({ ...new FakeFactory().hooks, max: 1 });
  await using _held = await pool.acquire();
  const controller = new AbortController();
  const waiting = pool.acquire({ signal: controller.signal });
  await settle();
  assert.equal(pool.stats().pending, 1);
  const reason = new DOMException("stop", "AbortError");
  controller.abort(reason);
  assert.equal(pool.stats().pending, 0);
  await assert.rejects(waiting, (e) => e === reason);
  assert.equal(pool.stats().aborted, 1);
});

test("a waiter aborted in the same tick as a release never receives the resource", async () => {
  const factory = new FakeFactory();
  await using pool = new Pool({ ...factory.hooks, max: 1 });
  const held = await pool.acquire();
  const controller = new AbortController();
  const aborted = pool.acquire({ signal: controller.signal });
  const next = pool.acquire();
  controller.abort();
  const released = held.release();
  await assert.rejects(aborted);
  const lease = await next;
  assert.equal(lease.resource.id, 1);
  await released;
  await lease.release();
  assert.equal(pool.stats().inUse, 0);
});

test("a timed-out acquire names the deadline the caller set, then the wait and the pool's numbers", async () => {
  const clock = fakeClock();
  await using pool = clock.pool({ ...new FakeFactory().hooks, max: 1, name: "db" });
  await using _held = await pool.acquire();
  const outcome = pool.acquire({ timeoutMs: 150 }).catch((e) => e);
  await clock.advance(152);
  const error = await outcome;
  assert.ok(error instanceof PoolTimeoutError);
  assert.equal(
    error.message,
    "Pool 'db': no resource within 150 ms (waited 150 ms) (size 1/1, in use 1, idle 0, waiting 0)",
  );
  assert.equal(error.waitedMs, 150);
  assert.equal(pool.stats().timedOut, 1);
  assert.equal(pool.stats().pending, 0);
});

test("acquireTimeoutMs is the deadline a timeout error names", async () => {
  const clock = fakeClock();
  await using pool = clock.pool({ ...new FakeFactory().hooks, max: 1, acquireTimeoutMs: 150 });
  await using _held = await pool.acquire();
  const outcome = pool.acquire().catch((e) => e);
  await clock.advance(200);
  assert.match((await outcome).message, /no resource within 150 ms/);
});

test("a bad timeoutMs is refused the same way whether or not a resource is idle", async () => {
  await using pool = new Pool({ ...new FakeFactory().hooks, max: 1 });
  await (await pool.acquire()).release();
  assert.equal(pool.stats().idle, 1);
  await assert.rejects(pool.acquire({ timeoutMs: -5 }), RangeError);
  const held = await pool.acquire();
  await assert.rejects(pool.acquire({ timeoutMs: -5 }), RangeError);
  await assert.rejects(pool.acquire({ timeoutMs: NaN }), /timeoutMs/);
  await held.release();
});

test("a resource created for a waiter that left goes to the next waiter", async () => {
  const factory = new FakeFactory();
  factory.holdCreates();
  await using pool = new Pool({ ...factory.hooks, max: 1 });
  const controller = new AbortController();
  const first = pool.acquire({ signal: controller.signal });
  await settle();
  assert.equal(factory.heldCreates, 1);
  controller.abort();
  await assert.rejects(first);
  const second = pool.acquire();
  factory.releaseCreates();
  const lease = await second;
  assert.equal(lease.resource.id, 1);
  assert.equal(factory.createCalls, 1);
  await lease.release();
});

test("a resource created after every waiter left is kept idle, not dropped", async () => {
  const factory = new FakeFactory();
  factory.holdCreates();
  await using pool = new Pool({ ...factory.hooks, max: 1 });
  await assert.rejects(pool.acquire({ timeoutMs: 10 }), PoolTimeoutError);
  factory.releaseCreates();
  await settle();
  assert.equal(pool.stats().idle, 1);
  assert.equal(factory.destroyed.length, 0);
});

test("maxWaiting refuses an acquire beyond the limit at once", async () => {
  await using pool = new Pool({ ...new FakeFactory().hooks, max: 1, maxWaiting: 2 });
  const held = await pool.acquire();
  const waiting = [pool.acquire(), pool.acquire()];
  const error = await pool.acquire().catch((e) => e);
  assert.ok(error instanceof PoolOverloadedError);
  assert.equal(error.waiting, 2);
  assert.match(error.message, /maxWaiting/);
  await held.release();
  for (const lease of await Promise.all(waiting.map((w) => w.then((l) => l.release())))) {
    assert.equal(lease, undefined);
  }
});

test("the resource of an ended lease cannot be used", async () => {
  await using pool = new Pool({ ...new FakeFactory().hooks });
  const lease = await pool.acquire();
  await lease.release();
  assert.throws(() => lease.resource, PoolError);
  assert.equal(lease.active, false);
});

test("release is idempotent", async () => {
  await using pool = new Pool({ ...new FakeFactory().hooks });
  const lease = await pool.acquire();
  await lease.release();
  await lease.release();
  lease[Symbol.dispose]();
  assert.equal(pool.stats().released, 1);
  assert.equal(pool.stats().idle, 1);
});

test("await using releases the lease at the end of the block", async () => {
  await using pool = new Pool({ ...new FakeFactory().hooks });
  {
    await using lease = await pool.acquire();
    assert.equal(lease.resource.id, 1);
    assert.equal(pool.stats().inUse, 1);
  }
  assert.equal(pool.stats().inUse, 0);
});

test("using (sync dispose) releases without waiting", async () => {
  await using pool = new Pool({ ...new FakeFactory().hooks });
  {
    using _lease = await pool.acquire();
  }
  assert.equal(pool.stats().idle, 1);
});

test("lease.destroy() discards the resource and the next acquire gets a new one", async () => {
  const factory = new FakeFactory();
  await using pool = new Pool({ ...factory.hooks });
  const lease = await pool.acquire();
  await lease.destroy("broken socket");
  assert.equal(factory.made[0].alive, false);
  await using next = await pool.acquire();
  assert.equal(next.resource.id, 2);
});

test("stats count acquires and releases and report wait percentiles", async () => {
  await using pool = new Pool({ ...new FakeFactory().hooks });
  for (let i = 0; i < 5; i++) await (await pool.acquire()).release();
  const stats = pool.stats();
  assert.equal(stats.acquired, 5);
  assert.equal(stats.released, 5);
  assert.equal(stats.acquireWaitHistogram.count, 5);
  assert.ok(stats.acquireWaitMs.max >= stats.acquireWaitMs.p50);
});

test("a tracker sees every create, acquire and release, and stats keep create and use times", async () => {
  const pool = new Pool({ create: () => Promise.resolve({}), max: 1 });
  const seen: string[] = [];
  const untrack = pool.track({
    created: (_ms, ok) => seen.push(`created ${ok}`),
    acquired: () => seen.push("acquired"),
    released: () => seen.push("released"),
    timedOut: () => seen.push("timedOut"),
  });
  await pool.use(() => {});
  const held = await pool.acquire();
  await assert.rejects(pool.acquire({ timeoutMs: 1 }));
  await held.release();
  untrack();
  await pool.use(() => {});
  assert.deepEqual(seen, [
    "created true",
    "acquired",
    "released",
    "acquired",
    "timedOut",
    "released",
  ]);
  const stats = pool.stats();
  assert.equal(stats.createTimeHistogram.count, 1);
  assert.equal(stats.useTimeHistogram.count, 3);
  await pool.close();
});

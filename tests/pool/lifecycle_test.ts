import { test } from "./sanitized.ts";
import assert from "node:assert/strict";
import { Pool, type PoolEvent } from "../../mod.ts";
import { FakeFactory, settle, until } from "./fake.ts";
import { fakeClock } from "./fake_clock.ts";

test("ready() resolves once min resources exist", async () => {
  const factory = new FakeFactory();
  await using pool = new Pool({ ...factory.hooks, min: 3 });
  await pool.ready();
  assert.equal(pool.stats().size, 3);
  assert.equal(pool.stats().idle, 3);
});

test("a destroyed resource is topped up back to min in the background", async () => {
  const factory = new FakeFactory();
  await using pool = new Pool({ ...factory.hooks, min: 2 });
  await pool.ready();
  const lease = await pool.acquire();
  await lease.destroy();
  await until(() => pool.stats().size === 2, "top-up to min");
  assert.equal(factory.made.length, 3);
});

test("idle resources above min are evicted after idleTimeoutMs", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  await using pool = clock.pool({ ...factory.hooks, min: 1, idleTimeoutMs: 30_000 });
  const leases = await Promise.all([pool.acquire(), pool.acquire(), pool.acquire()]);
  for (const lease of leases) await lease.release();
  assert.equal(pool.stats().idle, 3);
  await clock.advance(29_000);
  assert.equal(pool.stats().size, 3);
  await clock.advance(16_000);
  assert.equal(pool.stats().size, 1);
  assert.equal(factory.destroyed.length, 2);
});

test("a resource past maxLifetimeMs is never handed out again", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  await using pool = clock.pool({ ...factory.hooks, maxLifetimeMs: 60_000 });
  await (await pool.acquire()).release();
  await clock.advance(60_000);
  await using lease = await pool.acquire();
  assert.equal(lease.resource.id, 2);
  assert.equal(factory.made[0].alive, false);
});

test("a resource past maxLifetimeMs is destroyed on release", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  await using pool = clock.pool({ ...factory.hooks, maxLifetimeMs: 60_000 });
  const lease = await pool.acquire();
  await clock.advance(60_000);
  await lease.release();
  assert.equal(factory.made[0].alive, false);
  assert.equal(pool.stats().size, 0);
});

test("a resource is destroyed after maxUses leases", async () => {
  const factory = new FakeFactory();
  await using pool = new Pool({ ...factory.hooks, maxUses: 2 });
  await pool.use(() => {});
  await pool.use(() => {});
  assert.equal(factory.made[0].alive, false);
  await pool.use((r) => assert.equal(r.id, 2));
});

test("idle resources above maxIdle are destroyed on release", async () => {
  const factory = new FakeFactory();
  await using pool = new Pool({ ...factory.hooks, max: 4, maxIdle: 1 });
  const leases = await Promise.all([1, 2, 3].map(() => pool.acquire()));
  for (const lease of leases) await lease.release();
  assert.equal(pool.stats().idle, 1);
  assert.equal(factory.destroyed.length, 2);
});

test("maxIdle: 0 gives a fresh resource to every use (no pooling)", async () => {
  const factory = new FakeFactory();
  await using pool = new Pool({ ...factory.hooks, maxIdle: 0 });
  await pool.use(() => {});
  await pool.use(() => {});
  assert.equal(factory.made.length, 2);
  assert.equal(pool.stats().size, 0);
});

test("a resource that fails validation is destroyed and the caller gets another", async () => {
  const factory = new FakeFactory();
  await using pool = new Pool({ ...factory.hooks, validate: (r) => !r.broken });
  await (await pool.acquire()).release();
  factory.made[0].broken = true;
  await using lease = await pool.acquire();
  assert.equal(lease.resource.id, 2);
  assert.equal(factory.made[0].alive, false);
});

test("a validate that throws counts as a failed validation", async () => {
  const factory = new FakeFactory();
  await using pool = new Pool({
    ...factory.hooks,
    validate: (r) => {
      if (r.broken) throw new Error("ping failed");
      return true;
    },
  });
  await (await pool.acquire()).release();
  factory.made[0].broken = true;
  await using lease = await pool.acquire();
  assert.equal(lease.resource.id, 2);
});

test("validateAfterMs skips validation of recently used resources", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  let checks = 0;
  await using pool = clock.pool({
    ...factory.hooks,
    validateAfterMs: 40,
    validate: () => (checks++, true),
  });
  await (await pool.acquire()).release();
  await (await pool.acquire()).release();
  assert.equal(checks, 0);
  await clock.advance(40);
  await (await pool.acquire()).release();
  assert.equal(checks, 1);
});

test("reset runs on release, before the resource goes idle", async () => {
  const factory = new FakeFactory();
  const resets: number[] = [];
  await using pool = new Pool({ ...factory.hooks, reset: (r) => void resets.push(r.id) });
  const lease = await pool.acquire();
  await lease.release();
  assert.deepEqual(resets, [1]);
  assert.equal(pool.stats().idle, 1);
});

test("a reset that throws destroys the resource and becomes an error event", async () => {
  const factory = new FakeFactory();
  await using pool = new Pool({
    ...factory.hooks,
    reset: () => {
      throw new Error("rollback failed");
    },
  });
  const controller = new AbortController();
  const events = pool.events({ signal: controller.signal });
  await (await pool.acquire()).release();
  controller.abort();
  const seen: PoolEvent[] = [];
  for await (const event of events) seen.push(event);
  assert.ok(seen.some((e) => e.type === "error" && e.during === "reset"));
  assert.equal(factory.made[0].alive, false);
  assert.equal(pool.stats().errors, 1);
});

test("an error isFatal recognises destroys the resource instead of releasing it", async () => {
  const factory = new FakeFactory();
  await using pool = new Pool({
    ...factory.hooks,
    isFatal: (error) => error instanceof Error && error.message === "socket closed",
  });
  await assert.rejects(pool.use(() => {
    throw new Error("socket closed");
  }));
  assert.equal(factory.made[0].alive, false);
  await assert.rejects(pool.use(() => {
    throw new Error("constraint violated");
  }));
  assert.equal(factory.made[1].alive, true);
  assert.equal(pool.stats().idle, 1);
});

test("reentrant: a nested use() in the same async context gets the outer resource", async () => {
  const factory = new FakeFactory();
  await using pool = new Pool({ ...factory.hooks, max: 1, reentrant: true });
  const ids = await pool.use(async (outer) => {
    const inner = await pool.use((r) => r.id, { timeoutMs: 50 });
    return [outer.id, inner];
  });
  assert.deepEqual(ids, [1, 1]);
  assert.equal(pool.stats().acquired, 1);
});

test("without reentrant, a nested use() at max 1 waits for a second resource", async () => {
  await using pool = new Pool({ ...new FakeFactory().hooks, max: 1 });
  await assert.rejects(pool.use(() => pool.use(() => {}, { timeoutMs: 30 })));
});

test("a lease held past leakDetectionMs emits a leak event with the acquire site", async () => {
  const clock = fakeClock();
  await using pool = clock.pool({ ...new FakeFactory().hooks, leakDetectionMs: 20 });
  const controller = new AbortController();
  const events = pool.events({ signal: controller.signal });
  const lease = await pool.acquire(); // the reported site must point here
  await clock.advance(30);
  assert.equal(pool.stats().leaks, 1);
  controller.abort();
  let leak: PoolEvent | undefined;
  for await (const event of events) if (event.type === "leak") leak = event;
  await lease.release();
  assert.ok(leak?.type === "leak");
  assert.match(leak.stack, /lifecycle_test\.ts/);
  assert.ok(leak.heldMs >= 20);
  assert.equal(pool.stats().leaks, 1);
});

test("events() streams end when the pool closes", async () => {
  const pool = new Pool({ ...new FakeFactory().hooks });
  const events = pool.events();
  await pool.use(() => {});
  await pool.close();
  const types = [];
  for await (const event of events) types.push(event.type);
  assert.deepEqual(types, ["create", "acquire", "release", "destroy", "close"]);
});

test("every subscriber gets every event", async () => {
  await using pool = new Pool({ ...new FakeFactory().hooks });
  const controller = new AbortController();
  const a = pool.events({ signal: controller.signal });
  const b = pool.events({ signal: controller.signal });
  await pool.use(() => {});
  controller.abort();
  const count = async (it: AsyncIterable<PoolEvent>) => {
    let n = 0;
    for await (const _ of it) n++;
    return n;
  };
  assert.deepEqual(await Promise.all([count(a), count(b)]), [3, 3]);
});

test("a slow subscriber loses its oldest events, keeping at most bufferSize", async () => {
  await using pool = new Pool({ ...new FakeFactory().hooks });
  const controller = new AbortController();
  const events = pool.events({ signal: controller.signal, bufferSize: 4 });
  for (let i = 0; i < 20; i++) await pool.use(() => {});
  controller.abort();
  const seen = [];
  for await (const event of events) seen.push(event.type);
  assert.deepEqual(seen, ["acquire", "release", "acquire", "release"]);
});

test("a destroy that throws becomes an error event and a counter, not an unhandled rejection", async () => {
  const pool = new Pool({
    create: () => Promise.resolve({}),
    destroy: () => Promise.reject(new Error("close failed")),
  });
  await pool.use(() => {});
  await pool.close();
  assert.equal(pool.stats().errors, 1);
});

test("resize() up serves waiters at once", async () => {
  await using pool = new Pool({ ...new FakeFactory().hooks, max: 1 });
  const held = await pool.acquire();
  const waiting = pool.acquire();
  await settle();
  pool.resize({ max: 2 });
  const lease = await waiting;
  assert.equal(lease.resource.id, 2);
  await lease.release();
  await held.release();
});

test("resize() down destroys idle extras now and busy extras on release", async () => {
  const factory = new FakeFactory();
  await using pool = new Pool({ ...factory.hooks, max: 4 });
  const leases = await Promise.all([1, 2, 3, 4].map(() => pool.acquire()));
  await leases[0].release();
  await leases[1].release();
  pool.resize({ max: 1 });
  assert.equal(pool.stats().size, 2);
  await leases[2].release();
  assert.equal(pool.stats().size, 1);
  await leases[3].release();
  assert.equal(pool.stats().size, 1);
  assert.equal(pool.stats().max, 1);
});

test("invalidate() destroys idle resources now and lent ones on release", async () => {
  const factory = new FakeFactory();
  await using pool = new Pool({ ...factory.hooks, max: 2 });
  const [a, b] = await Promise.all([pool.acquire(), pool.acquire()]);
  await a.release();
  pool.invalidate();
  assert.equal(factory.made[0].alive, false);
  await b.release();
  assert.equal(factory.made[1].alive, false);
  await using fresh = await pool.acquire();
  assert.equal(fresh.resource.id, 3);
});

test("a synchronous create, destroy and validate are accepted, in the types too", async () => {
  let made = 0;
  await using pool = new Pool({
    create: () => ({ n: ++made }),
    destroy: () => {},
    validate: () => true,
  });
  assert.equal(await pool.use((r) => r.n), 1);
});

test("an aborted acquire is an abort event and a counter", async () => {
  await using pool = new Pool({ ...new FakeFactory().hooks, max: 1 });
  const held = await pool.acquire();
  const listening = new AbortController();
  const events = pool.events({ signal: listening.signal });
  const controller = new AbortController();
  const waiting = pool.acquire({ signal: controller.signal }).catch((e) => e);
  const reason = new Error("the client went away");
  controller.abort(reason);
  assert.equal(await waiting, reason);
  listening.abort();
  const types: PoolEvent[] = [];
  for await (const event of events) types.push(event);
  assert.ok(types.some((e) => e.type === "abort" && e.waitedMs >= 0));
  assert.equal(pool.stats().aborted, 1);
  await held.release();
});

test("a leak nobody listens for is one console warning with the acquire site", async () => {
  const clock = fakeClock();
  await using pool = clock.pool({ ...new FakeFactory().hooks, leakDetectionMs: 20 });
  const warnings: string[] = [];
  const warn = console.warn;
  console.warn = (...args: unknown[]) => void warnings.push(args.join(" "));
  try {
    const lease = await pool.acquire(); // the warning must point here
    await clock.advance(100);
    await lease.release();
  } finally {
    console.warn = warn;
  }
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /Pool 'pool': resource 1 has been lent for \d+ ms .*leaked/);
  assert.match(warnings[0], /lifecycle_test\.ts/);
});

test("durations in stats() are milliseconds rounded to the microsecond", async () => {
  await using pool = new Pool({ ...new FakeFactory().hooks });
  for (let i = 0; i < 5; i++) await pool.use(() => new Promise((r) => setTimeout(r, 1)));
  const s = pool.stats();
  const durations = [
    s.acquireWaitMs.p50,
    s.acquireWaitMs.p99,
    s.acquireWaitMs.max,
    ...[s.acquireWaitHistogram, s.createTimeHistogram, s.useTimeHistogram].flatMap((h) => [
      h.sumMs,
      h.minMs,
      h.maxMs,
      ...h.sumsMs,
    ]),
  ];
  for (const ms of durations) {
    assert.equal(ms, Math.round(ms * 1000) / 1000, `${ms} has more than 3 decimals`);
  }
  assert.ok(s.useTimeHistogram.sumMs >= 5);
});

import { test } from "./sanitized.ts";
import assert from "node:assert/strict";
import { type Pool, type PoolEvent, PoolTimeoutError } from "../../mod.ts";
import { FakeFactory, type FakeResource } from "./fake.ts";
import { fakeClock } from "./fake_clock.ts";

const never = () => new Promise<never>(() => {});

/** Collects the `error` events of a pool. */
function errorEvents<R>(pool: Pool<R>): { seen: PoolEvent[]; stop: () => Promise<void> } {
  const seen: PoolEvent[] = [];
  const controller = new AbortController();
  const stream = pool.events({ signal: controller.signal });
  const reading = (async () => {
    for await (const event of stream) if (event.type === "error") seen.push(event);
  })();
  return { seen, stop: () => (controller.abort(), reading) };
}

test("close({ timeoutMs }) resolves by its deadline even when destroy never settles", async () => {
  const clock = fakeClock();
  const pool = clock.pool({ create: () => Promise.resolve({}), destroy: never });
  await pool.use(() => {});
  let closed = false;
  const closing = pool.close({ timeoutMs: 50 }).then(() => closed = true);
  await clock.advance(49);
  assert.equal(closed, false);
  await clock.advance(1);
  assert.equal(closed, true);
  await closing;
});

test("close() without a timeout stops waiting for a hung destroy after hookTimeoutMs", async () => {
  const clock = fakeClock();
  const pool = clock.pool({
    create: () => Promise.resolve({}),
    destroy: never,
    hookTimeoutMs: 300,
  });
  await pool.use(() => {});
  let closed = false;
  const closing = pool.close().then(() => closed = true);
  await clock.advance(299);
  assert.equal(closed, false);
  await clock.advance(1);
  assert.equal(closed, true);
  await closing;
});

test("a destroy that never settles costs an error event and a counter, nothing else", async () => {
  const clock = fakeClock();
  await using pool = clock.pool({ create: () => Promise.resolve({}), destroy: never });
  const { seen, stop } = errorEvents(pool);
  const lease = await pool.acquire();
  const destroyed = lease.destroy("broken");
  await clock.advance(5_000);
  await destroyed;
  await stop();
  assert.equal(seen.length, 1);
  assert.ok(seen[0].type === "error" && seen[0].during === "destroy");
  assert.ok(seen[0].type === "error" && seen[0].error instanceof PoolTimeoutError);
  assert.equal(pool.stats().errors, 1);
});

test("use() rethrows a fatal error without waiting for the broken resource's destroy", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  const pool = clock.pool({ ...factory.hooks, destroy: never, isFatal: () => true });
  const failure = new Error("socket closed");
  await assert.rejects(
    pool.use(() => {
      throw failure;
    }),
    (e) => e === failure,
  );
  assert.equal(pool.stats().size, 0);
  assert.equal(pool.stats().destroyed, 1);
  const closing = pool.close();
  await clock.advance(5_000);
  await closing;
});

test("a reset that never settles destroys the resource after hookTimeoutMs and the release resolves", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  await using pool = clock.pool({ ...factory.hooks, reset: never, hookTimeoutMs: 1_000 });
  const lease = await pool.acquire();
  let released = false;
  const releasing = lease.release().then(() => released = true);
  await clock.advance(999);
  assert.equal(released, false);
  await clock.advance(1);
  await releasing;
  assert.equal(factory.made[0].alive, false);
  assert.equal(pool.stats().errors, 1);
});

test("a validate that never answers counts as failed at hookTimeoutMs; the caller gets another", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  await using pool = clock.pool({
    ...factory.hooks,
    validate: (r: FakeResource) => r.broken ? never() : true,
  });
  await (await pool.acquire()).release();
  factory.made[0].broken = true;
  const waiting = pool.acquire({ timeoutMs: 10_000 });
  await clock.advance(5_000);
  await using lease = await waiting;
  assert.equal(lease.resource.id, 2);
  assert.equal(factory.made[0].alive, false);
});

test("the validate signal aborts when its deadline passes", async () => {
  const clock = fakeClock();
  let seen: AbortSignal | undefined;
  await using pool = clock.pool({
    create: () => Promise.resolve({}),
    validate: (_r, signal) => {
      seen = signal;
      return never();
    },
    hookTimeoutMs: 100,
  });
  await (await pool.acquire()).release();
  const waiting = pool.acquire();
  await clock.advance(100);
  assert.ok(seen?.reason instanceof PoolTimeoutError);
  await (await waiting).release();
});

test("a close forced by its deadline stops waiting for hung destroys and leaves no hook deadline behind", async () => {
  const clock = fakeClock();
  const pool = clock.pool({ create: () => Promise.resolve({}), destroy: never });
  await pool.use(() => {});
  const closing = pool.close({ timeoutMs: 50 });
  await clock.advance(50);
  await closing;
  assert.equal(clock.pendingTimers, 0);
});

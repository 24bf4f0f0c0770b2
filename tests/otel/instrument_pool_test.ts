import { test } from "../pool/sanitized.ts";
import assert from "node:assert/strict";
import { Pool, type PoolTracker } from "../../mod.ts";
import { instrumentPool } from "../../otel/mod.ts";
import { FLUSH_EVERY_MS } from "../../otel/instrument_pool.ts";

function smallPool(name = "small") {
  return new Pool({ name, create: () => Promise.resolve({}), max: 1 });
}

/** A pool whose `stats()` reads are counted: the flush timer reads them. */
function countedPool() {
  const pool = smallPool("counted");
  const counted = { reads: 0, stats: () => (counted.reads++, pool.stats()) };
  return { pool, counted };
}

test("after stop() the pool is no longer read, and a second stop() does nothing", async () => {
  const { pool, counted } = countedPool();
  const otel = instrumentPool(counted);
  await pool.use(() => {});
  otel.stop();
  otel.stop();
  const reads = counted.reads;
  // Two timer periods: a timer left running would have read the pool by then (an unref'd
  // timer escapes Deno's op sanitizer, hence the wait). It cannot fail falsely: lateness only
  // lets a leak go unseen.
  await new Promise((resolve) => setTimeout(resolve, 2 * FLUSH_EVERY_MS));
  assert.equal(counted.reads, reads);
  await pool.close();
});

test("`using` the instrumentation stops it at the end of the block", async () => {
  const pool = smallPool();
  {
    using _otel = instrumentPool(pool);
    await pool.use(() => {});
  }
  await pool.close();
});

test("instrumenting adds nothing to the acquire/release path, only a close listener", async () => {
  const pool = smallPool();
  const given: PoolTracker[] = [];
  const track = pool.track.bind(pool);
  pool.track = (tracker) => (given.push(tracker), track(tracker));
  using _otel = instrumentPool(pool);
  await pool.use(() => {});
  assert.equal(given.length, 1);
  assert.deepEqual(Object.keys(given[0]), ["closed"]);
  await pool.close();
});

test("the instrumentation takes its last reading when its pool closes, and stops there", async () => {
  const pool = smallPool();
  let reads = 0;
  const stats = pool.stats.bind(pool);
  pool.stats = () => (reads++, stats());
  instrumentPool(pool); // never stopped by hand: the sanitizers see a timer left behind
  await pool.use(() => {});
  const before = reads;
  await pool.close();
  assert.ok(reads > before, "a last reading at the close");
  const after = reads;
  await new Promise((resolve) => setTimeout(resolve, 2 * FLUSH_EVERY_MS));
  assert.equal(reads, after);
});

test("an instrumented pool that is not a Pool stops at the first reading that finds it closed", async () => {
  const { pool, counted } = countedPool();
  instrumentPool(counted);
  await pool.use(() => {});
  await pool.close();
  await new Promise((resolve) => setTimeout(resolve, 2 * FLUSH_EVERY_MS));
  const reads = counted.reads;
  await new Promise((resolve) => setTimeout(resolve, 2 * FLUSH_EVERY_MS));
  assert.equal(counted.reads, reads);
});

test("an empty pool name is a TypeError that says how to fix it", async () => {
  const pool = smallPool();
  assert.throws(
    () => instrumentPool(pool, { poolName: "" }),
    (e: unknown) =>
      e instanceof TypeError && e.message.includes("poolName") && e.message.includes("`name`"),
  );
  await pool.close();
});

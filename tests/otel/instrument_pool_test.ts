import assert from "node:assert/strict";
import { Pool } from "../../mod.ts";
import { FLUSH_EVERY_MS, instrumentPool } from "../../otel/mod.ts";

function smallPool(name = "small") {
  return new Pool({ name, create: () => Promise.resolve({}), max: 1 });
}

/** A pool whose `stats()` reads are counted: the flush timer reads them. */
function countedPool() {
  const pool = smallPool("counted");
  const counted = { reads: 0, stats: () => (counted.reads++, pool.stats()) };
  return { pool, counted };
}

Deno.test("after stop() the pool is no longer read, and a second stop() does nothing", async () => {
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

Deno.test("`using` the instrumentation stops it at the end of the block", async () => {
  const pool = smallPool();
  {
    using _otel = instrumentPool(pool);
    await pool.use(() => {});
  }
  await pool.close();
});

Deno.test("instrumenting adds no tracker to the acquire/release path", async () => {
  const pool = smallPool();
  let tracked = 0;
  pool.track = () => {
    tracked++;
    return () => {};
  };
  using _otel = instrumentPool(pool);
  await pool.use(() => {});
  assert.equal(tracked, 0);
  await pool.close();
});

Deno.test("an empty pool name is a TypeError that says how to fix it", async () => {
  const pool = smallPool();
  assert.throws(
    () => instrumentPool(pool, { poolName: "" }),
    (e: unknown) =>
      e instanceof TypeError && e.message.includes("poolName") && e.message.includes("`name`"),
  );
  await pool.close();
});

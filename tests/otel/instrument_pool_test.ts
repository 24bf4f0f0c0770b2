import assert from "node:assert/strict";
import { Pool } from "../../mod.ts";
import type { PoolTracker } from "../../pool/tracker.ts";
import { instrumentPool } from "../../otel/mod.ts";

/** A real pool whose `track()` calls are counted. */
function countedPool(name = "counted") {
  const pool = new Pool({ name, create: () => Promise.resolve({}), max: 1 });
  const attached = new Set<PoolTracker>();
  const track = pool.track.bind(pool);
  pool.track = (tracker) => {
    attached.add(tracker);
    const untrack = track(tracker);
    return () => {
      attached.delete(tracker);
      untrack();
    };
  };
  return { pool, attached };
}

Deno.test("instrumentPool attaches one tracker, and stop() detaches it once", async () => {
  const { pool, attached } = countedPool();
  const otel = instrumentPool(pool);
  assert.equal(attached.size, 1);
  await pool.use(() => {});
  otel.stop();
  otel.stop();
  assert.equal(attached.size, 0);
  await pool.close();
});

Deno.test("`using` the instrumentation stops it at the end of the block", async () => {
  const { pool, attached } = countedPool();
  {
    using _otel = instrumentPool(pool);
    assert.equal(attached.size, 1);
  }
  assert.equal(attached.size, 0);
  await pool.close();
});

Deno.test("an empty pool name is a TypeError that says how to fix it", async () => {
  const { pool } = countedPool();
  assert.throws(
    () => instrumentPool(pool, { poolName: "" }),
    (e: unknown) =>
      e instanceof TypeError && e.message.includes("poolName") && e.message.includes("`name`"),
  );
  await pool.close();
});

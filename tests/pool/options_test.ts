import assert from "node:assert/strict";
import { Pool } from "../../mod.ts";

const create = () => Promise.resolve({});

Deno.test("a missing create is a TypeError that names the option", () => {
  // @ts-expect-error: create is required
  assert.throws(() => new Pool({}), { name: "TypeError", message: /'create' must be a function/ });
});

Deno.test("min above max is a RangeError naming both", () => {
  assert.throws(() => new Pool({ create, min: 5, max: 2 }), {
    name: "RangeError",
    message: "Pool option 'min' (5) must not exceed 'max' (2)",
  });
});

Deno.test("a non-integer size is a RangeError naming the option and the value", () => {
  assert.throws(() => new Pool({ create, max: 2.5 }), {
    name: "RangeError",
    message: /'max' must be a whole number ≥ 1 \(or Infinity\), got 2.5/,
  });
  assert.throws(() => new Pool({ create, max: 0 }), /'max'.*got 0/);
});

Deno.test("a negative or non-numeric duration is a RangeError naming the option", () => {
  assert.throws(() => new Pool({ create, acquireTimeoutMs: -1 }), /'acquireTimeoutMs'.*got -1/);
  // @ts-expect-error: a string is a mistake worth a clear message
  assert.throws(() => new Pool({ create, idleTimeoutMs: "5s" }), /'idleTimeoutMs'.*got "5s"/);
});

Deno.test("Infinity is a valid acquireTimeoutMs", async () => {
  await using _pool = new Pool({ create, acquireTimeoutMs: Infinity });
});

Deno.test("maxIdle below min is a RangeError that says why", () => {
  assert.throws(
    () => new Pool({ create, min: 2, maxIdle: 1 }),
    /'maxIdle' \(1\) must be at least 'min' \(2\)/,
  );
});

Deno.test("an unknown order is a RangeError listing the choices", () => {
  // @ts-expect-error: not an order
  assert.throws(() => new Pool({ create, order: "random" }), /'order' must be "lifo" or "fifo"/);
});

Deno.test("a bad breaker threshold is a RangeError naming breaker.threshold", () => {
  assert.throws(() => new Pool({ create, breaker: { threshold: 0 } }), /'breaker.threshold'/);
});

Deno.test("a bad per-call timeout rejects the acquire with a RangeError", async () => {
  await using pool = new Pool({ create, max: 1 });
  await using _held = await pool.acquire();
  await assert.rejects(pool.acquire({ timeoutMs: -5 }), /'timeoutMs'.*got -5/);
});

Deno.test("resize() with min above max is a RangeError and changes nothing", async () => {
  await using pool = new Pool({ create, max: 4 });
  assert.throws(() => pool.resize({ min: 5, max: 3 }), RangeError);
  assert.equal(pool.stats().max, 4);
});

Deno.test("lifo hands out the most recently returned resource, fifo the longest idle", async () => {
  let n = 0;
  for (const [order, expected] of [["lifo", 2], ["fifo", 1]] as const) {
    await using pool = new Pool({ create: () => Promise.resolve(++n), order });
    const [a, b] = await Promise.all([pool.acquire(), pool.acquire()]);
    const [first, second] = [a.resource, b.resource];
    await a.release();
    await b.release();
    await using next = await pool.acquire();
    assert.equal(next.resource, expected === 2 ? second : first, order);
  }
});

import { test } from "./sanitized.ts";
import assert from "node:assert/strict";
import { Pool } from "../../mod.ts";
import { nearestName, rejectUnknownOptions } from "../../pool/options.ts";

const create = () => Promise.resolve({});

test("a missing create is a TypeError that names the option", () => {
  // @ts-expect-error: create is required
  assert.throws(() => new Pool({}), { name: "TypeError", message: /'create' must be a function/ });
});

test("min above max is a RangeError naming both", () => {
  assert.throws(() => new Pool({ create, min: 5, max: 2 }), {
    name: "RangeError",
    message: "Pool option 'min' (5) must not exceed 'max' (2)",
  });
});

test("a non-integer size is a RangeError naming the option and the value", () => {
  assert.throws(() => new Pool({ create, max: 2.5 }), {
    name: "RangeError",
    message: /'max' must be a whole number ≥ 1 \(or Infinity\), got 2.5/,
  });
  assert.throws(() => new Pool({ create, max: 0 }), /'max'.*got 0/);
});

test("a negative or non-numeric duration is a RangeError naming the option", () => {
  assert.throws(() => new Pool({ create, acquireTimeoutMs: -1 }), /'acquireTimeoutMs'.*got -1/);
  // @ts-expect-error: a string is a mistake worth a clear message
  assert.throws(() => new Pool({ create, idleTimeoutMs: "5s" }), /'idleTimeoutMs'.*got "5s"/);
});

test("Infinity is a valid acquireTimeoutMs", async () => {
  await using _pool = new Pool({ create, acquireTimeoutMs: Infinity });
});

test("maxIdle below min is a RangeError that says why", () => {
  assert.throws(
    () => new Pool({ create, min: 2, maxIdle: 1 }),
    /'maxIdle' \(1\) must be at least 'min' \(2\)/,
  );
});

test("an unknown order is a RangeError listing the choices", () => {
  // @ts-expect-error: not an order
  assert.throws(() => new Pool({ create, order: "random" }), /'order' must be "lifo" or "fifo"/);
});

test("a bad breaker threshold is a RangeError naming breaker.threshold", () => {
  assert.throws(() => new Pool({ create, breaker: { threshold: 0 } }), /'breaker.threshold'/);
});

test("resize() with min above max is a RangeError and changes nothing", async () => {
  await using pool = new Pool({ create, max: 4 });
  assert.throws(() => pool.resize({ min: 5, max: 3 }), RangeError);
  assert.equal(pool.stats().max, 4);
});

test("lifo hands out the most recently returned resource, fifo the longest idle", async () => {
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

test("a misspelled option is a TypeError naming it and the nearest known option", () => {
  // @ts-expect-error: not an option
  assert.throws(() => new Pool({ create, idleTimeout: 1000 }), {
    name: "TypeError",
    message: "Pool: 'idleTimeout' is not an option; did you mean 'idleTimeoutMs'?",
  });
  // @ts-expect-error: not an option
  assert.throws(() => new Pool({ create, maxLifeTimeMs: 1000 }), /did you mean 'maxLifetimeMs'\?/);
  // @ts-expect-error: not a breaker option
  assert.throws(() => new Pool({ create, breaker: { treshold: 3 } }), {
    name: "TypeError",
    message: "Pool option 'breaker': 'treshold' is not an option; did you mean 'threshold'?",
  });
});

test("an unknown option like no known one is a TypeError listing the options", () => {
  // @ts-expect-error: not an option
  assert.throws(() => new Pool({ create, colour: "blue" }), {
    name: "TypeError",
    message: /^Pool: 'colour' is not an option; the options are 'create', .*'maxWaiting'$/,
  });
});

test("the nearest-option helper suggests only likely misspellings", () => {
  const known = ["timeoutMs", "signal", "concurrency"];
  assert.equal(nearestName("timeout", known), "timeoutMs");
  assert.equal(nearestName("signl", known), "signal");
  assert.equal(nearestName("Concurency", known), "concurrency");
  assert.equal(nearestName("banana", known), undefined);
  assert.throws(() => rejectUnknownOptions("close()", { timeout: 1 }, ["timeoutMs"]), {
    name: "TypeError",
    message: "close(): 'timeout' is not an option; did you mean 'timeoutMs'?",
  });
});

test("a misspelled option of map() or events() is a TypeError naming the call and the nearest option", async () => {
  await using pool = new Pool({ create, max: 1 });
  assert.throws(
    // @ts-expect-error: not an option
    () => pool.map([1], () => 1, { concurency: 2 }),
    {
      name: "TypeError",
      message: "map(): 'concurency' is not an option; did you mean 'concurrency'?",
    },
  );
  assert.throws(
    // @ts-expect-error: not an option
    () => pool.events({ bufferSiz: 5 }),
    {
      name: "TypeError",
      message: "events(): 'bufferSiz' is not an option; did you mean 'bufferSize'?",
    },
  );
});

test("acquire() and use() let an adapter's own per-call options through", async () => {
  await using pool = new Pool({ create, max: 1 });
  const callOptions = { timeoutMs: 1_000, deadlineMs: 5_000 }; // as the PostgreSQL adapter passes
  await (await pool.acquire(callOptions)).release();
  assert.equal(await pool.use(() => 1, callOptions), 1);
});

test("a bad per-call option names the call it was given to, not the pool", async () => {
  await using pool = new Pool({ create, max: 1 });
  await assert.rejects(pool.acquire({ timeoutMs: -5 }), {
    name: "RangeError",
    message: /^acquire\(\) option 'timeoutMs' must be a duration .*got -5$/,
  });
  assert.throws(() => pool.map([1], () => 1, { concurrency: 0 }), {
    name: "RangeError",
    message: /^map\(\) option 'concurrency' must be a whole number ≥ 1 .*got 0$/,
  });
  assert.throws(
    () => pool.map([1], () => 1, { timeoutMs: -1 }),
    /^RangeError: map\(\) option 'timeoutMs'/,
  );
  await assert.rejects(
    pool.use(() => {}, { timeoutMs: -1 }),
    /^RangeError: use\(\) option 'timeoutMs'/,
  );
  await assert.rejects(pool.ready({ timeoutMs: -1 }), /^RangeError: ready\(\) option 'timeoutMs'/);
  assert.throws(
    () => pool.events({ bufferSize: 0 }),
    /^RangeError: events\(\) option 'bufferSize'/,
  );
  assert.throws(() => pool.resize({ max: 0 }), /^RangeError: resize\(\) option 'max'/);
  assert.throws(
    // @ts-expect-error: not an option of close()
    () => pool.close({ timeout: 5 }),
    /close\(\): 'timeout' .* did you mean 'timeoutMs'/,
  );
});

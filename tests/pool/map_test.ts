import { test } from "./sanitized.ts";
import assert from "node:assert/strict";
import { Pool } from "../../mod.ts";
import { delay, FakeFactory } from "./fake.ts";

test("map() yields results in input order", async () => {
  await using pool = new Pool({ ...new FakeFactory().hooks, max: 4 });
  const out = [];
  for await (const value of pool.map([30, 1, 20, 2, 10], async (_r, ms) => (await delay(ms), ms))) {
    out.push(value);
  }
  assert.deepEqual(out, [30, 1, 20, 2, 10]);
});

test("map() runs at most min(concurrency, max) items at once", async () => {
  await using pool = new Pool({ ...new FakeFactory().hooks, max: 3 });
  let running = 0;
  let peak = 0;
  const work = async () => {
    peak = Math.max(peak, ++running);
    await delay(2);
    running--;
  };
  for await (const _ of pool.map(Array(12).fill(0), work, { concurrency: 10 })) { /* drain */ }
  assert.equal(peak, 3);
  for await (const _ of pool.map(Array(12).fill(0), work, { concurrency: 2 })) { /* drain */ }
  assert.equal(peak, 3);
});

test("map() accepts an async iterable", async () => {
  await using pool = new Pool({ ...new FakeFactory().hooks });
  async function* numbers() {
    for (let i = 1; i <= 3; i++) yield i;
  }
  const out = [];
  for await (const value of pool.map(numbers(), (_r, n) => n * 2)) out.push(value);
  assert.deepEqual(out, [2, 4, 6]);
});

test("map() stops at the first error, aborts the items in flight and releases everything", async () => {
  await using pool = new Pool({ ...new FakeFactory().hooks, max: 3 });
  const failure = new Error("item 2 failed");
  let abortedInFlight = 0;
  let started = 0;
  const run = async () => {
    for await (
      const _ of pool.map([1, 2, 3, 4, 5, 6], async (_r, n, signal) => {
        started++;
        if (n === 2) throw failure;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 1_000);
          signal.addEventListener("abort", () => {
            abortedInFlight++;
            clearTimeout(timer);
            resolve();
          });
        });
      })
    ) { /* drain */ }
  };
  await assert.rejects(run(), (e) => e === failure);
  assert.equal(started, 3);
  assert.equal(abortedInFlight, 2);
  assert.equal(pool.stats().inUse, 0);
});

test("map() stops when the caller's signal aborts", async () => {
  await using pool = new Pool({ ...new FakeFactory().hooks, max: 2 });
  const controller = new AbortController();
  const reason = new Error("caller stop");
  const run = async () => {
    for await (const n of pool.map([1, 2, 3, 4], (_r, n) => n, { signal: controller.signal })) {
      if (n === 2) controller.abort(reason);
    }
  };
  await assert.rejects(run(), (e) => e === reason);
  assert.equal(pool.stats().inUse, 0);
});

test("breaking out of map() early releases every resource", async () => {
  await using pool = new Pool({ ...new FakeFactory().hooks, max: 3 });
  for await (const n of pool.map([1, 2, 3, 4, 5], async (_r, n) => (await delay(1), n))) {
    if (n === 2) break;
  }
  assert.equal(pool.stats().inUse, 0);
});

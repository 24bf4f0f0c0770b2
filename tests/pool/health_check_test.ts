import { test } from "./sanitized.ts";
import assert from "node:assert/strict";
import { HEALTH_CHECKS_AT_ONCE } from "../../pool/housekeeper.ts";
import { FakeFactory, type FakeResource } from "./fake.ts";
import { fakeClock } from "./fake_clock.ts";

/** A validate that answers only when the test says so, remembering whom it checked. */
function heldValidate() {
  const checked: number[] = [];
  const answers: ((ok: boolean) => void)[] = [];
  const validate = (r: FakeResource) => {
    checked.push(r.id);
    return new Promise<boolean>((resolve) => answers.push(resolve));
  };
  return { checked, answers, validate };
}

test("the health check validates idle resources in the background and replaces a broken one", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  await using pool = clock.pool({
    ...factory.hooks,
    min: 2,
    healthCheckIntervalMs: 1_000,
    validateAfterMs: 60_000,
    validate: (r: FakeResource) => !r.broken,
  });
  await pool.ready();
  factory.made[0].broken = true;
  await clock.advance(1_000);
  assert.equal(factory.made[0].alive, false);
  assert.equal(pool.stats().size, 2);
});

test("the health check takes a few idle resources at a time, the longest unchecked first", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  const { checked, answers, validate } = heldValidate();
  await using pool = clock.pool({
    ...factory.hooks,
    max: 6,
    healthCheckIntervalMs: 1_000,
    validateAfterMs: 60_000,
    validate,
  });
  const leases = await Promise.all([1, 2, 3, 4, 5].map(() => pool.acquire()));
  await clock.advance(100); // the releases fall between two housekeeping runs
  for (const lease of leases.toReversed()) {
    await lease.release(); // resource 5 goes idle first, 1 last
    await clock.advance(10);
  }
  await clock.advance(2_000);
  assert.deepEqual(checked, [5, 4].slice(0, HEALTH_CHECKS_AT_ONCE));
  assert.equal(pool.stats().idle, 5 - HEALTH_CHECKS_AT_ONCE);
  for (const answer of answers.splice(0)) answer(true);
  await clock.advance(0);
  assert.deepEqual(checked, [5, 4, 3, 2]);
  for (const answer of answers.splice(0)) answer(true);
  await clock.advance(0);
  for (const answer of answers.splice(0)) answer(true);
  await clock.advance(0);
  assert.deepEqual(checked, [5, 4, 3, 2, 1]);
});

test("a caller never waits for a background check while another idle resource is ready", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  const { answers, validate } = heldValidate();
  await using pool = clock.pool({
    ...factory.hooks,
    min: 4,
    healthCheckIntervalMs: 1_000,
    validateAfterMs: 60_000,
    validate,
  });
  await pool.ready();
  await clock.advance(1_000);
  assert.equal(answers.length, HEALTH_CHECKS_AT_ONCE);
  const lease = await pool.acquire();
  assert.equal(pool.stats().inUse, 1 + HEALTH_CHECKS_AT_ONCE);
  await lease.release();
  for (const answer of answers.splice(0)) answer(true);
  await clock.advance(0);
});

test("a caller arriving while every idle resource is under check gets a new one", async () => {
  const clock = fakeClock();
  const factory = new FakeFactory();
  const { answers, validate } = heldValidate();
  await using pool = clock.pool({
    ...factory.hooks,
    min: 1,
    healthCheckIntervalMs: 1_000,
    validateAfterMs: 60_000,
    validate,
  });
  await pool.ready();
  await clock.advance(1_000);
  assert.equal(answers.length, 1);
  await using lease = await pool.acquire();
  assert.equal(lease.resource.id, 2);
  answers[0](true);
  await clock.advance(0);
  assert.equal(pool.stats().idle, 1);
});

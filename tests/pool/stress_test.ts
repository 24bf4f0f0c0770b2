import { test } from "./sanitized.ts";
import assert from "node:assert/strict";
import { Pool, PoolError } from "../../mod.ts";
import { delay } from "./fake.ts";

/** A small seeded PRNG (mulberry32), so a failing run can be replayed from its seed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test("randomized stress: thousands of operations keep every invariant", async () => {
  const seed = Number(Deno.env.get("STRESS_SEED") ?? Date.now() % 1_000_000);
  const rand = random(seed);
  const context = `seed ${seed} (replay with STRESS_SEED=${seed})`;
  let alive = 0;
  let made = 0;
  let overMax = 0;
  type Resource = { id: number; alive: boolean };
  // deno-lint-ignore prefer-const -- create() reads the pool it belongs to
  let pool: Pool<Resource>;
  pool = new Pool<Resource>({
    max: 6,
    min: 1,
    acquireTimeoutMs: 40,
    idleTimeoutMs: 20,
    validateAfterMs: 5,
    breaker: { threshold: 8, cooldownMs: 20 },
    create: async () => {
      const { size, creating, max } = pool.stats();
      if (size + creating > max) overMax++;
      await delay(Math.floor(rand() * 3));
      if (rand() < 0.05) throw new Error("random create failure");
      alive++;
      return { id: ++made, alive: true };
    },
    destroy: async (r) => {
      await delay(Math.floor(rand() * 2));
      assert.ok(r.alive, `destroyed twice: ${r.id}`);
      r.alive = false;
      alive--;
    },
    validate: () => rand() > 0.05,
    isFatal: (e) => e instanceof Error && e.message === "fatal",
  });

  // Each outcome is caught at once (undefined or the error), or Deno would
  // rightly report the early rejections as unhandled.
  const operations: Promise<unknown>[] = [];
  const track = (operation: Promise<unknown>) =>
    operations.push(operation.then(() => undefined, (error) => error ?? "undefined rejection"));
  let maxSeen = 6;
  for (let i = 0; i < 3_000; i++) {
    const dice = rand();
    if (dice < 0.45) {
      track(
        pool.acquire({ timeoutMs: rand() * 50 }).then(async (lease) => {
          await delay(Math.floor(rand() * 3));
          if (rand() < 0.1) await lease.destroy("random");
          else await lease.release();
        }),
      );
    } else if (dice < 0.7) {
      const controller = new AbortController();
      track(pool.acquire({ signal: controller.signal }).then((lease) => lease.release()));
      setTimeout(() => controller.abort(), Math.floor(rand() * 5));
    } else if (dice < 0.95) {
      track(pool.use(async () => {
        await delay(Math.floor(rand() * 2));
        if (rand() < 0.05) throw new Error("fatal");
      }));
    } else if (dice < 0.98) {
      const max = 1 + Math.floor(rand() * 8);
      maxSeen = Math.max(maxSeen, max);
      pool.resize({ min: Math.min(1, max), max });
    } else {
      pool.invalidate();
    }
    if (i % 10 === 0) await delay(1);
  }
  for (const error of await Promise.all(operations)) {
    if (error === undefined) continue;
    const expected = error instanceof PoolError || error instanceof DOMException ||
      (error instanceof Error && ["fatal", "random create failure"].includes(error.message));
    assert.ok(expected, `${context}: unexpected failure ${(error as Error)?.stack ?? error}`);
  }
  const stats = pool.stats();
  assert.equal(overMax, 0, `${context}: a create started with the pool full`);
  assert.equal(stats.inUse, 0, context);
  assert.equal(stats.pending, 0, context);
  assert.ok(stats.size <= stats.max, context);
  assert.ok(stats.acquired > 150, `${context}: only ${stats.acquired} acquires succeeded`);
  await pool.close();
  const closed = pool.stats();
  assert.equal(closed.destroyed, closed.created, context);
  assert.equal(alive, 0, `${context}: ${alive} resources never destroyed`);
});

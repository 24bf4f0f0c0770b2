/**
 * The pool strategies psycopg2 and SQLAlchemy users know, one test each, on a real server:
 * which backend process (pid) serves each call shows what the strategy does.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  createPostgresPool,
  noPool,
  perContext,
  PoolTimeoutError,
  type PostgresPool,
  type PostgresPoolSettings,
  queuePool,
  singleConnection,
} from "../../adapters/postgres/mod.ts";
import { startDatabase } from "../../tasks/setup/postgres.ts";

const pid = (pg: PostgresPool) =>
  pg.use(async (sql) => (await sql<{ pid: number }[]>`select pg_backend_pid() as pid`)[0].pid);

Deno.test("postgres pool strategies", async (t) => {
  await using db = await startDatabase();
  const open = (pool: PostgresPoolSettings) => createPostgresPool({ url: db.url, pool });

  await t.step(
    "no pool (NullPool): every use gets a fresh connection, closed on release",
    async () => {
      await using pg = open(noPool());
      const pids = [await pid(pg), await pid(pg), await pid(pg)];
      assert.equal(new Set(pids).size, 3);
      const s = pg.stats();
      assert.equal(s.created, 3);
      assert.equal(s.size, 0, "nothing is kept open");
    },
  );

  await t.step(
    "single connection (StaticPool): concurrent callers take turns on one connection",
    async () => {
      await using pg = open(singleConnection());
      const pids = await Promise.all(Array.from({ length: 10 }, () => pid(pg)));
      assert.equal(new Set(pids).size, 1);
      const nested = await pg.use(() => pid(pg)); // reentrant: no self-deadlock at max 1
      assert.equal(nested, pids[0]);
      assert.equal(pg.stats().created, 1);
    },
  );

  await t.step(
    "queue pool (QueuePool): pool_size kept, max_overflow on top, pool_timeout to wait",
    async () => {
      await using pg = open(
        queuePool({ poolSize: 2, maxOverflow: 3, poolTimeout: 0.5, prePing: true }),
      );
      let held = 0;
      const { promise: release, resolve } = Promise.withResolvers<void>();
      const { promise: allHeld, resolve: heldAll } = Promise.withResolvers<void>();
      const holders = Array.from({ length: 5 }, () =>
        pg.use(async () => {
          if (++held === 5) heldAll();
          await release;
        }));
      await allHeld;
      assert.equal(pg.stats().size, 5, "pool_size + max_overflow connections under load");
      await assert.rejects(
        pid(pg),
        PoolTimeoutError,
        "a sixth caller waits pool_timeout, then fails",
      );
      resolve();
      await Promise.all(holders);
      assert.equal(pg.stats().idle, 2, "only pool_size connections stay open afterwards");
    },
  );

  await t.step(
    "persistent per context (PersistentConnectionPool): nested calls share, separate tasks do not",
    async () => {
      await using pg = open(perContext(4));
      // Each task holds its connection until both have one, so they surely overlap
      // (a timed overlap does not: on a busy machine one task may finish first).
      let holding = 0;
      const { promise: bothHolding, resolve } = Promise.withResolvers<void>();
      const [a, b] = await Promise.all([0, 1].map(() =>
        pg.use(async () => {
          const outer = await pid(pg);
          const inner = await pid(pg);
          assert.equal(inner, outer, "the same connection throughout one task");
          if (++holding === 2) resolve();
          await bothHolding;
          return outer;
        })
      ));
      assert.notEqual(a, b, "two concurrent tasks hold two connections");
    },
  );
});

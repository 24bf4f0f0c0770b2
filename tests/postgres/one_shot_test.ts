/**
 * One-shot `query()` statements share leases: those sent in the same turn go out pipelined on
 * one connection, and the session reset runs once per lease. What must never share does not
 * (session changes, transaction control, calls with a signal), a statement's failure stays its
 * own, and a nested one-shot runs on its outer call's connection.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createPostgresPool, type PostgresPoolOptions } from "../../adapters/postgres/mod.ts";
import { type Database, startDatabase } from "../../tasks/setup/postgres.ts";
import { warm } from "./target.ts";

type Pid = { pid: number }[];

function open(db: Database, options: Omit<PostgresPoolOptions, "url"> = {}) {
  return createPostgresPool({ url: db.url, pool: { max: 10 }, ...options });
}

function distinct(pids: Pid[]): number {
  return new Set(pids.map((rows) => rows[0].pid)).size;
}

Deno.test("postgres one-shot statements", async (t) => {
  await using db = await startDatabase();
  await db.admin`create table one_shot_rows (n int)`;
  // Changes the session behind a plain select: the text gives no sign of it.
  await db.admin.unsafe(
    "create function poolkit_sneak() returns text language sql as " +
      "$$ select set_config('search_path', 'pg_catalog', false) $$",
  );

  await t.step("one-shots sent in the same turn share one connection", async () => {
    await using pg = open(db);
    const pids = await Promise.all(
      Array.from({ length: 20 }, () => pg.query<Pid>`select pg_backend_pid() as pid`),
    );
    assert.equal(distinct(pids), 1);
  });

  await t.step("a lease carries at most oneShotBatch statements", async () => {
    await using pg = open(db, { oneShotBatch: 4 });
    await warm(pg, 3);
    const pids = await Promise.all(
      Array.from({ length: 12 }, () => pg.query<Pid>("select pg_backend_pid() as pid")),
    );
    assert.equal(distinct(pids), 3);
  });

  await t.step("oneShotBatch: 1 gives each one-shot a lease of its own", async () => {
    await using pg = open(db, { oneShotBatch: 1, pool: { max: 3 } });
    await warm(pg, 3);
    const pids = await Promise.all(
      Array.from({ length: 3 }, () => pg.query<Pid>`select pg_backend_pid() as pid`),
    );
    assert.equal(distinct(pids), 3);
  });

  await t.step("a one-shot that may change the session never shares a connection", async () => {
    await using pg = open(db);
    await warm(pg, 2);
    const plain = Array.from({ length: 5 }, () => pg.query<Pid>`select pg_backend_pid() as pid`);
    const changing = pg.query<Pid>(
      "select pg_backend_pid() as pid, set_config('application_name', 'changed', false)",
    );
    const [pids, [own]] = await Promise.all([Promise.all(plain), changing]);
    assert.equal(distinct(pids), 1);
    assert.notEqual(own.pid, pids[0][0].pid);
  });

  await t.step("a one-shot BEGIN never takes its batch-mates into a transaction", async () => {
    await using pg = open(db);
    await db.admin`truncate one_shot_rows`;
    await Promise.all([
      pg.query("begin"),
      ...Array.from({ length: 5 }, (_, n) => pg.query`insert into one_shot_rows values (${n})`),
    ]);
    const [row] = await db.admin<{ n: number }[]>`select count(*)::int as n from one_shot_rows`;
    assert.equal(row.n, 5, "every insert was committed");
  });

  await t.step("a failing statement does not fail its batch-mates", async () => {
    await using pg = open(db);
    const [first, failed, last] = await Promise.allSettled([
      pg.query<Pid>`select pg_backend_pid() as pid`,
      pg.query`select 1 / 0`,
      pg.query<Pid>`select pg_backend_pid() as pid`,
    ]);
    assert.equal(failed.status, "rejected");
    assert.equal((failed.reason as { code?: string }).code, "22012");
    assert.ok(first.status === "fulfilled" && last.status === "fulfilled");
    assert.equal(first.value[0].pid, last.value[0].pid, "they shared the connection");
  });

  await t.step(
    "an aborted one-shot rejects with its reason and leaves the statements of others alone",
    async () => {
      await using pg = open(db);
      const mates = Array.from(
        { length: 3 },
        () => pg.query<Pid>`select pg_backend_pid() as pid from pg_sleep(0.3)`,
      );
      const reason = new Error("caller gave up");
      const controller = new AbortController();
      const aborted = pg.query("select pg_sleep(5)", [], { signal: controller.signal });
      setTimeout(() => controller.abort(reason), 50);
      await assert.rejects(aborted, (error) => error === reason);
      assert.equal(distinct(await Promise.all(mates)), 1);
    },
  );

  await t.step(
    'the reset runs after the batch: a setting changed inside a function is gone for the next lease (reset "always")',
    async () => {
      await using pg = open(db, { pool: { max: 1 } });
      const fresh = await pg.use((sql) => sql`show search_path`);
      await Promise.all([pg.query`select poolkit_sneak()`, pg.query`select 1`]);
      assert.deepEqual(await pg.use((sql) => sql`show search_path`), fresh);
      assert.equal(pg.stats().created, 1, "the same connection, cleaned");
    },
  );

  await t.step("a one-shot inside transaction() runs in that transaction", async () => {
    await using pg = open(db);
    await db.admin`truncate one_shot_rows`;
    await assert.rejects(
      pg.transaction(async () => {
        await pg.query`insert into one_shot_rows values (1)`;
        throw new Error("roll it back");
      }),
      /roll it back/,
    );
    const [row] = await db.admin<{ n: number }[]>`select count(*)::int as n from one_shot_rows`;
    assert.equal(row.n, 0);
  });

  await t.step("oneShotBatch that is not an integer >= 1 is a TypeError naming it", () => {
    assert.throws(() => open(db, { oneShotBatch: 0 }), /oneShotBatch must be an integer >= 1/);
  });
});

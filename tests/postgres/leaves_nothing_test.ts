/**
 * Nothing is left behind after a failure: no pooled connection inside a transaction, no extra
 * connection for a statement error, no server backend for a connection the pool dropped, no
 * connection the application ended lent again, and no lease outliving its call. Checked in the
 * server's `pg_stat_activity` and the pool's `stats()`. Direct connections.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createPostgresPool, PostgresConnectionError } from "../../adapters/postgres/mod.ts";
import { startFaultProxy } from "../../tasks/setup/fault_proxy.ts";
import { type Database, startDatabase } from "../../tasks/setup/postgres.ts";
import { appName, eventually } from "./target.ts";

/** The states of `app`'s backends on the server now (`idle`, `active`, `idle in transaction`). */
async function states(db: Database, app: string): Promise<string[]> {
  const rows = await db.admin<{ state: string }[]>`
    select state from pg_stat_activity where application_name = ${app} order by state`;
  return rows.map((r) => r.state);
}

Deno.test("postgres: nothing left behind after a failure", async (t) => {
  await using db = await startDatabase();
  const through = (port: number) => db.url.replace(`:${db.port}/`, `:${port}/`);
  const table = db.table("leaves_nothing");
  await db.admin.unsafe(`create table if not exists ${table} (id int primary key)`);

  await t.step(
    "an aborted transaction() leaves no pooled connection idle in transaction",
    async () => {
      const app = appName("aborted_tx");
      await using pg = createPostgresPool({
        url: db.url,
        connection: { application_name: app },
        pool: { max: 2 },
      });
      const id = Math.floor(Math.random() * 1e9);
      await assert.rejects(
        pg.transaction(async (sql) => {
          await sql`insert into ${sql(table)} (id) values (${id})`;
          await sql`select pg_sleep(30)`;
        }, { signal: AbortSignal.timeout(500) }),
        (error: Error) => error.name === "TimeoutError",
      );
      const [row] = await pg.query<{ ok: number }[]>`select 1 as ok`;
      assert.equal(row.ok, 1, "the next call works");
      await eventually("no backend of the pool is inside a transaction", async () => {
        return (await states(db, app)).every((s) => !s.startsWith("idle in transaction"));
      }, 3_000);
      const [{ n }] = await db.admin<{ n: number }[]>`
        select count(*)::int as n from ${db.admin(table)} where id = ${id}`;
      assert.equal(n, 0, "the aborted insert was rolled back");
    },
  );

  await t.step(
    "statement errors never cost a connection: syntax errors, unique-key violations, failing transactions",
    async () => {
      const app = appName("stmt_errors");
      await using pg = createPostgresPool({
        url: db.url,
        connection: { application_name: app },
      });
      const id = Math.floor(Math.random() * 1e9);
      await db.admin.unsafe(`insert into ${table} (id) values (${id})`);
      for (let i = 0; i < 10; i++) {
        await assert.rejects(pg.query("selec 1"), /syntax error/);
      }
      for (let i = 0; i < 10; i++) {
        await assert.rejects(
          pg.query(`insert into ${table} (id) values ($1)`, [id]),
          /duplicate key/,
        );
      }
      for (let i = 0; i < 10; i++) {
        await assert.rejects(
          pg.transaction(async (sql) => {
            await sql`select 1`;
            await sql.unsafe("selec 1");
          }),
          /syntax error/,
        );
      }
      assert.equal(pg.stats().created, 1, "one connection for all of them");
      assert.equal((await states(db, app)).length, 1);
    },
  );

  await t.step(
    "a connection dropped after a blackhole is closed: its server backend goes once the network is back",
    async () => {
      const app = appName("blackhole_close");
      await using proxy = await startFaultProxy({ port: db.port });
      await using pg = createPostgresPool({
        url: through(proxy.port),
        connection: { application_name: app },
        pool: { max: 1 },
      });
      const [{ pid }] = await pg.query<{ pid: number }[]>`select pg_backend_pid() as pid`;
      proxy.setMode("blackhole");
      const controller = new AbortController();
      const call = pg.use((sql) => sql`select 1`, { signal: controller.signal });
      call.catch(() => {});
      await eventually("the call waits on the silent network", () => pg.stats().inUse === 1);
      controller.abort(new Error("caller gave up"));
      await assert.rejects(call, /caller gave up/);
      await eventually("the pool destroyed it", () => pg.stats().destroyed === 1);
      proxy.setMode("pass");
      await eventually("its backend is gone from the server", async () => {
        const [{ n }] = await db.admin<{ n: number }[]>`
          select count(*)::int as n from pg_stat_activity where pid = ${pid}`;
        return n === 0;
      }, 3_000);
    },
  );

  await t.step(
    "a connection the application ended is never lent again, and the error says it was ended by the application",
    async () => {
      await using pg = createPostgresPool({ url: db.url, pool: { max: 1 } });
      const error = await pg.use(async (sql) => {
        await sql.end();
        await sql`select 1`;
      }).then(() => assert.fail("a statement ran on an ended connection"), (e) => e);
      assert.ok(error instanceof PostgresConnectionError, String(error));
      assert.match(error.message, /ended by the application/);
      assert.doesNotMatch(error.message, /server closed it/);
      const [row] = await pg.query<{ ok: number }[]>`select 1 as ok`;
      assert.equal(row.ok, 1, "the next caller gets a live connection");
      assert.equal(pg.stats().created, 2);
    },
  );

  await t.step("when a call has resolved, stats() shows its lease ended", async () => {
    await using pg = createPostgresPool({ url: db.url, pool: { max: 2 } });
    await pg.query`select 1`;
    assert.deepEqual([pg.stats().inUse, pg.stats().idle], [0, 1], "after query()");
    await pg.use((sql) => sql`select 1`);
    assert.deepEqual([pg.stats().inUse, pg.stats().idle], [0, 1], "after use()");
    await pg.transaction((sql) => sql`select 1`);
    assert.deepEqual([pg.stats().inUse, pg.stats().idle], [0, 1], "after transaction()");
    await pg.use(() => {
      throw new Error("callback failed");
    }).catch(() => {});
    assert.deepEqual([pg.stats().inUse, pg.stats().idle], [0, 1], "after a failed use()");
  });
});

/**
 * Calls that end when the network does not: a fault proxy between pool and server drops
 * traffic (blackhole) or cuts every connection (reset), and per-call deadlines bound the whole
 * call. Direct connections.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  CircuitOpenError,
  createPostgresPool,
  type PostgresPool,
  PostgresTimeoutError,
} from "../../adapters/postgres/mod.ts";
import { startFaultProxy } from "../../tasks/setup/fault_proxy.ts";
import { type Database, startDatabase } from "../../tasks/setup/postgres.ts";
import { appName, eventually, warm } from "./target.ts";

/** Statements of `app` running on the server now. */
async function running(db: Database, app: string): Promise<number> {
  const [{ n }] = await db.admin<{ n: number }[]>`
    select count(*)::int as n from pg_stat_activity
    where application_name = ${app} and state = 'active'`;
  return n;
}

Deno.test("postgres network faults and deadlines", async (t) => {
  await using db = await startDatabase();
  const through = (port: number) => db.url.replace(`:${db.port}/`, `:${port}/`);

  await t.step(
    "an abort while the network drops packets rejects with signal.reason within its deadline, and the connection is never lent again",
    async () => {
      await using proxy = await startFaultProxy({ port: db.port });
      await using pg = createPostgresPool({ url: through(proxy.port), pool: { max: 1 } });
      const first = await pg.use((sql) => sql`select pg_backend_pid() as pid`);
      proxy.setMode("blackhole");
      const reason = new Error("caller gave up");
      const controller = new AbortController();
      const call = pg.use((sql) => sql`select 1`, { signal: controller.signal });
      call.catch(() => {});
      await eventually("the call waits on the silent network", () => pg.stats().inUse === 1);
      const abortedAt = performance.now();
      controller.abort(reason);
      await assert.rejects(call, (error) => error === reason);
      const ms = Math.round(performance.now() - abortedAt);
      assert.ok(ms < 2_000, `rejected ${ms} ms after the abort, not at the server's pace`);
      proxy.setMode("pass");
      const [row] = await pg.query<{ pid: number }[]>`select pg_backend_pid() as pid`;
      assert.notEqual(row.pid, first[0].pid, "the aborted call's connection was not lent again");
      assert.ok(pg.stats().destroyed >= 1);
    },
  );

  await t.step(
    "the pool serves again as soon as the network is back after hung calls held every connection",
    async () => {
      await using proxy = await startFaultProxy({ port: db.port });
      await using pg = createPostgresPool({ url: through(proxy.port), pool: { max: 3 } });
      await Promise.all([1, 2, 3].map(() => pg.query`select 1`));
      proxy.setMode("blackhole");
      const calls = Array.from(
        { length: 10 },
        () => pg.query("select 1", [], { timeoutMs: 300 }).then(() => "ok", (e) => e),
      );
      for (const outcome of await Promise.all(calls)) {
        assert.ok(outcome instanceof PostgresTimeoutError, `got ${outcome}`);
      }
      proxy.setMode("pass");
      const back = performance.now();
      const [row] = await pg.query<{ ok: number }[]>("select 1 as ok", [], { timeoutMs: 5_000 });
      assert.equal(row.ok, 1);
      const ms = Math.round(performance.now() - back);
      assert.ok(ms <= 1_000, `first success ${ms} ms after the network was back`);
    },
  );

  await t.step(
    "after the network cut every connection under load, the first call succeeds within 1 s of it being back",
    async () => {
      await using proxy = await startFaultProxy({ port: db.port });
      await using pg = createPostgresPool({
        url: through(proxy.port),
        connect_timeout: 5,
        pool: { max: 5, acquireTimeoutMs: 3_000 },
      });
      let back = Infinity;
      let firstSuccess = Infinity;
      let running = true;
      const worker = async () => {
        while (running) {
          try {
            await pg.query("select 1", [], { timeoutMs: 5_000 });
            if (performance.now() >= back) firstSuccess = Math.min(firstSuccess, performance.now());
          } catch {
            await new Promise((r) => setTimeout(r, 10));
          }
        }
      };
      const workers = Array.from({ length: 20 }, worker);
      await eventually("calls flow", () => pg.stats().acquired > 50);
      proxy.setMode("reset");
      await new Promise((r) => setTimeout(r, 1_500)); // the outage: every connect attempt fails
      proxy.setMode("pass");
      back = performance.now();
      await eventually(
        "a call succeeds after the network is back",
        () => firstSuccess < Infinity,
        15_000,
      );
      running = false;
      await Promise.all(workers);
      const ms = Math.round(firstSuccess - back);
      assert.ok(ms <= 1_000, `first success ${ms} ms after the network was back (at most 1000)`);
    },
  );

  await t.step(
    "timeoutMs bounds the statement too: pg_sleep(2) with timeoutMs 500 rejects at the timeout and is cancelled on the server",
    async () => {
      const app = appName("deadline");
      await using pg = createPostgresPool({ url: db.url, connection: { application_name: app } });
      const started = performance.now();
      const error = await pg.query("select pg_sleep(2)", [], { timeoutMs: 500 }).then(
        () => assert.fail("must not outlive its deadline"),
        (e: unknown) => e,
      );
      assert.ok(error instanceof PostgresTimeoutError, `got ${error}`);
      assert.equal(error.timeoutMs, 500);
      assert.ok(performance.now() - started < 1_900, "rejected before the statement could finish");
      await eventually(
        "the statement is gone from the server",
        async () => (await running(db, app)) === 0,
      );
    },
  );

  await t.step("timeoutMs is available to the tagged-template form through with()", async () => {
    await using pg: PostgresPool = createPostgresPool({ url: db.url });
    await assert.rejects(
      pg.with({ timeoutMs: 300 }).query`select pg_sleep(2)`,
      PostgresTimeoutError,
    );
    const [row] = await pg.with({ timeoutMs: 5_000 }).query<{ ok: number }[]>`select 1 as ok`;
    assert.equal(row.ok, 1);
  });

  await t.step(
    "the pool's acquireTimeoutMs bounds the wait for a connection within a longer call timeoutMs",
    async () => {
      await using pg = createPostgresPool({ url: db.url, pool: { max: 1, acquireTimeoutMs: 200 } });
      const holder = pg.query("select pg_sleep(0.7)");
      await assert.rejects(
        pg.query("select 1", [], { timeoutMs: 5_000 }),
        (error: Error) => error.name === "PoolTimeoutError",
      );
      await holder;
    },
  );
  await t.step(
    "a wrong password costs one connection attempt at the wire, whatever the pool size and the load",
    async () => {
      await using proxy = await startFaultProxy({ port: db.port });
      const url = new URL(through(proxy.port));
      url.password = `wrong-${crypto.randomUUID()}`;
      await using pg = createPostgresPool({ url: url.href, pool: { max: 10 } }); // default breaker
      const failures: unknown[] = [];
      const started = performance.now();
      // 50 callers keep asking for 1.5 s, well inside the default 5 s cooldown.
      await Promise.all(Array.from({ length: 50 }, async () => {
        while (performance.now() - started < 1_500) {
          await pg.query`select 1`.then(() => assert.fail("connected"), (e) => failures.push(e));
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      }));
      assert.equal(proxy.accepted, 1, "one connection attempt reached the server");
      assert.ok(failures.length > 50, `${failures.length} calls failed fast`);
      assert.ok(failures.every((e) => e instanceof CircuitOpenError), String(failures.at(-1)));
      assert.match(String((failures.at(-1) as Error).message), /password authentication failed/);
    },
  );
  await t.step(
    "a password changed while the pool runs costs one attempt at the wire once its connections end",
    async () => {
      const role = `rotating_${crypto.randomUUID().slice(0, 8)}`;
      await db.admin.unsafe(`create role ${role} login password 'first-password'`);
      try {
        await using proxy = await startFaultProxy({ port: db.port });
        const url = new URL(through(proxy.port));
        url.username = role;
        url.password = "first-password";
        await using pg = createPostgresPool({ url: url.href, pool: { max: 10 } });
        await warm(pg, 10);
        assert.equal(pg.stats().size, 10);
        await db.admin.unsafe(`alter role ${role} password 'second-password'`);
        await db
          .admin`select pg_terminate_backend(pid) from pg_stat_activity where usename = ${role}`;
        await eventually("every backend of the role is gone", async () => {
          const [{ n }] = await db.admin<{ n: number }[]>`
            select count(*)::int as n from pg_stat_activity where usename = ${role}`;
          return n === 0;
        });
        const before = proxy.accepted;
        const started = performance.now();
        const failures: unknown[] = [];
        await Promise.all(Array.from({ length: 50 }, async () => {
          while (performance.now() - started < 1_500) {
            await pg.query`select 1`.then(() => assert.fail("connected"), (e) => failures.push(e));
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
        }));
        assert.equal(proxy.accepted - before, 1, "one connection attempt with the old password");
        assert.match(String((failures.at(-1) as Error).message), /password authentication failed/);
      } finally {
        await db.admin.unsafe(`drop role if exists ${role}`);
      }
    },
  );
});

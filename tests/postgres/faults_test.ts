/**
 * Faults on a real server: backends terminated under the pool, and the server restarted in the
 * middle of a 50-worker load. Direct connections only: behind PgBouncer a terminated server
 * connection is PgBouncer's to replace, and our pool never sees it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createPostgresPool, type PostgresPoolSettings } from "../../adapters/postgres/mod.ts";
import type { PgConnection } from "../../adapters/postgres/connection.ts";
import { OrderDao } from "../../tasks/orders/order_dao.ts";
import { type Database, startDatabase } from "../../tasks/setup/postgres.ts";
import { appName, eventually, warm } from "./target.ts";

/** Terminates every server connection of `app` and waits until they are gone. */
async function terminateAll(db: Database, app: string): Promise<number> {
  const rows = await db.admin<{ ok: boolean }[]>`
    select pg_terminate_backend(pid, 5000) as ok from pg_stat_activity
    where application_name = ${app}`;
  return rows.filter((r) => r.ok).length;
}

Deno.test("postgres faults", async (t) => {
  await using db = await startDatabase();

  /** Terminates every pooled connection of a warm pool of 5, then makes 20 calls: none fails. */
  async function noErrorAfterTerminatingAll(label: string, settings: PostgresPoolSettings) {
    const app = appName(label);
    await using pg = createPostgresPool({
      url: db.url,
      connection: { application_name: app },
      pool: { max: 5, ...settings },
    });
    await warm(pg, 5);
    assert.equal(await terminateAll(db, app), 5);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => pg.query<{ n: number }[]>`select ${i}::int as n`),
    );
    assert.deepEqual(results.map((r) => r[0].n), Array.from({ length: 20 }, (_, i) => i));
    assert.ok(pg.stats().destroyed >= 5, "the terminated connections were discarded");
  }

  await t.step(
    "with validation on, callers see no error after every pooled connection was terminated",
    () => noErrorAfterTerminatingAll("validate_on", { validateAfterMs: 0 }),
  );

  await t.step(
    "with the defaults, callers see no error after every pooled connection was terminated",
    () => noErrorAfterTerminatingAll("defaults", {}),
  );

  await t.step(
    "with validation off, a connection whose socket is known to be closed is never lent",
    async () => {
      const app = appName("validate_off");
      await using pg = createPostgresPool({
        url: db.url,
        connection: { application_name: app },
        pool: { max: 1, validateAfterMs: Infinity },
      });
      const conn = await (async () => {
        await using lease = await pg.acquire();
        return lease.resource as PgConnection; // kept only to watch it while it sits idle in the pool
      })();
      assert.equal(await terminateAll(db, app), 1);
      await eventually("the client sees its socket closed", () => conn.state === "closed");
      const [row] = await pg.query<{ pid: number }[]>`select pg_backend_pid() as pid`;
      assert.notEqual(row.pid, conn.pid, "a fresh connection, without an error");
      assert.equal(pg.stats().destroyed, 1);
    },
  );

  await t.step(
    "closing the pool while connections are being opened leaves no stray error",
    async () => {
      for (let round = 0; round < 30; round++) {
        const pg = createPostgresPool({ url: db.url, pool: { max: 3 } });
        const calls = Array.from({ length: 3 }, () => pg.query`select 1`.catch(() => {}));
        await new Promise((r) => setTimeout(r, round % 15)); // land in every phase of the handshake
        await pg.close({ timeoutMs: 2_000 });
        await Promise.all(calls);
        assert.equal(pg.stats().destroyed, pg.stats().created);
      }
    },
  );

  await t.step({
    name:
      "a server restart during a 50-worker load: nobody hangs, the first call succeeds within 1 s of the server being back, no lease leaks, no acknowledged insert is lost",
    ignore: !db.canRestart,
    fn: async () => {
      const app = appName("restart");
      const pg = createPostgresPool({
        url: db.url,
        connection: { application_name: app },
        connect_timeout: 5,
        pool: {
          max: 5,
          acquireTimeoutMs: 3_000,
          validateAfterMs: 0,
          breaker: { threshold: 5, cooldownMs: 300 },
        },
      });
      const dao = new OrderDao(pg, db.table("pedido_restart"));
      await dao.ensureTable();
      const acknowledged: number[] = [];
      let firstSuccessAfterRestart = Infinity;
      let serverBack = Infinity;
      const failures = new Map<string, number>();
      let hung = 0;
      let running = true;
      const worker = async (w: number) => {
        while (running) {
          // A generous per-call deadline: reaching it means the call hung.
          const deadline = AbortSignal.timeout(20_000);
          try {
            const order = await dao.insert({ cliente: `w${w}`, descripcion: "restart" }, {
              signal: deadline,
            });
            acknowledged.push(order.id);
            if (performance.now() >= serverBack) {
              firstSuccessAfterRestart = Math.min(firstSuccessAfterRestart, performance.now());
            }
          } catch (error) {
            if (deadline.aborted && error === deadline.reason) hung++;
            const name = (error as Error).name ?? "unknown";
            failures.set(name, (failures.get(name) ?? 0) + 1);
            await new Promise((r) => setTimeout(r, 10));
          }
        }
      };
      const workers = Array.from({ length: 50 }, (_, w) => worker(w));
      await eventually("inserts flow before the restart", () => acknowledged.length >= 200);
      const before = acknowledged.length;
      await db.restart(); // returns once the server accepts connections again
      serverBack = performance.now();
      await eventually(
        "the pool serves again after the server's return",
        () => acknowledged.length >= before + 200,
        30_000,
      );
      running = false;
      await Promise.all(workers);

      assert.equal(hung, 0, "no call hung until its own deadline");
      const recoveryMs = Math.round(firstSuccessAfterRestart - serverBack);
      assert.ok(
        recoveryMs <= 1_000,
        `first success ${recoveryMs} ms after the server was back (at most 1000 ms); ` +
          `create errors ${pg.stats().createErrors}, failures ${JSON.stringify([...failures])}`,
      );
      const stats = pg.stats();
      assert.equal(stats.inUse, 0, "no lease leaked");
      assert.equal(stats.pending, 0);
      const [{ n }] = await pg.use((sql) =>
        sql<{ n: number }[]>`select count(*)::int as n from ${sql(dao.table)}
          where id = any(${acknowledged})`
      );
      assert.equal(n, acknowledged.length, "every acknowledged insert is in the table");
      await pg.close();
      assert.equal(pg.stats().destroyed, pg.stats().created);
    },
  });
});

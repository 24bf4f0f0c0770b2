/**
 * The PostgreSQL adapter's behaviour, as one suite run against each {@link Target}: directly
 * (direct_test.ts) and through PgBouncer in transaction mode (pgbouncer_test.ts).
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  CircuitOpenError,
  createPostgresPool,
  PoolTimeoutError,
  PostgresConnectionError,
  type PostgresPool,
  type PostgresPoolSettings,
} from "../../adapters/postgres/mod.ts";
import { OrderDao } from "../../tasks/orders/order_dao.ts";
import { appName, eventually, type Target } from "./target.ts";

/** Runs every behaviour of the adapter as a step of `t` against `target`. */
export async function adapterSuite(t: Deno.TestContext, target: Target): Promise<void> {
  const table = target.db.table(`pedido_${crypto.randomUUID().slice(0, 6)}`);
  const open = (label: string, pool: PostgresPoolSettings = {}): [PostgresPool, string] => {
    const app = appName(label);
    const pg = createPostgresPool({
      url: target.url,
      ...target.driver,
      connection: { application_name: app },
      pool: { max: 5, ...pool },
    });
    return [pg, app];
  };
  {
    const [pg] = open("setup");
    await new OrderDao(pg, table).ensureTable();
    await pg.close();
  }

  await t.step("the OrderDao round-trips insert, list, find by id and delete", async () => {
    await using pg = open("dao")[0];
    const dao = new OrderDao(pg, table);
    const ana = await dao.insert({
      cliente: "Ana",
      descripcion: "2 cafés",
      fechaPedido: "2024-05-17",
    });
    assert.deepEqual(await dao.findById(ana.id), {
      id: ana.id,
      cliente: "Ana",
      descripcion: "2 cafés",
      fechaPedido: "2024-05-17",
    });
    const luis = await dao.insert({ cliente: "Luis", descripcion: "té" });
    const listed = (await dao.list({ limit: 1000 })).map((o) => o.id);
    assert.ok(listed.includes(ana.id) && listed.includes(luis.id));
    assert.equal(await dao.delete(ana.id), true);
    assert.equal(await dao.findById(ana.id), undefined);
    assert.equal(await dao.delete(ana.id), false);
  });

  await t.step("a transaction commits when its callback returns", async () => {
    await using pg = open("commit")[0];
    const dao = new OrderDao(pg, table);
    const order = await pg.transaction(() => dao.insert({ cliente: "C", descripcion: "commit" }));
    assert.equal((await dao.findById(order.id))?.descripcion, "commit");
  });

  await t.step("a transaction rolls back when its callback throws", async () => {
    await using pg = open("rollback")[0];
    const dao = new OrderDao(pg, table);
    let id = 0;
    await assert.rejects(
      pg.transaction(async () => {
        id = (await dao.insert({ cliente: "R", descripcion: "rollback" })).id;
        throw new Error("changed my mind");
      }),
      /changed my mind/,
    );
    assert.ok(id > 0);
    assert.equal(await dao.findById(id), undefined);
  });

  await t.step(
    "a nested transaction that returned is rolled back with the outer one that fails",
    async () => {
      await using pg = open("nested", { max: 1 })[0];
      const dao = new OrderDao(pg, table);
      const ids: number[] = [];
      await assert.rejects(
        pg.transaction(async () => {
          ids.push((await dao.insert({ cliente: "N", descripcion: "outer" })).id);
          await pg.transaction(async () => {
            ids.push((await dao.insert({ cliente: "N", descripcion: "inner" })).id);
          });
          throw new Error("outer fails after the inner one returned");
        }),
        /outer fails/,
      );
      for (const id of ids) assert.equal(await dao.findById(id), undefined);
      assert.equal(pg.stats().created, 1, "the nested call reused the outer connection");
    },
  );

  await t.step("use() rolls back a transaction its callback left open", async () => {
    await using pg = open("left-open", { max: 1 })[0];
    const dao = new OrderDao(pg, table);
    const id = await pg.use(async (sql) => {
      await sql`begin`;
      const [row] = await sql<{ id: number }[]>`
        insert into ${sql(table)} (cliente, descripcion, fecha_pedido)
        values ('L', 'never committed', current_date) returning id`;
      return row.id;
    });
    assert.equal(await dao.findById(id), undefined);
    // SAVEPOINT only works inside a transaction: it fails if the next borrower inherited one.
    await assert.rejects(pg.query`savepoint probe`, /transaction block/);
  });

  await t.step("use() rolls back a transaction its callback left failed", async () => {
    await using pg = open("left-failed", { max: 1 })[0];
    await pg.use(async (sql) => {
      await sql`begin`;
      await assert.rejects(sql`select 1 / 0`, /division by zero/);
      // The transaction is now aborted: every statement would fail until ROLLBACK.
    });
    const [row] = await pg.query<{ ok: number }[]>`select 1 as ok`;
    assert.equal(row.ok, 1, "the next borrower gets a working connection");
    assert.equal(pg.stats().created, 1, "the same connection, rolled back rather than replaced");
  });

  await t.step("a one-shot query takes text and $1 parameters", async () => {
    await using pg = open("oneshot")[0];
    const rows = await pg.query<{ sum: number }[]>("select $1::int + $2::int as sum", [2, 3]);
    assert.equal(rows[0].sum, 5);
  });

  await t.step(
    "50 workers in transactions on a pool of 5 keep every acknowledged insert and never hold more than 5 connections",
    async () => {
      const [pg, app] = open("load", { max: 5, acquireTimeoutMs: 60_000 });
      await using _ = pg;
      const dao = new OrderDao(pg, table);
      const marker = `load-${crypto.randomUUID()}`;
      const acknowledged: number[] = [];
      let peak = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          peak = Math.max(peak, await target.connections(app), pg.stats().size);
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      await Promise.all(Array.from({ length: 50 }, async (_, worker) => {
        for (let i = 0; i < 4; i++) {
          const ids = await pg.transaction(async () => [
            (await dao.insert({ cliente: `w${worker}`, descripcion: marker })).id,
            (await dao.insert({ cliente: `w${worker}`, descripcion: marker })).id,
          ]);
          acknowledged.push(...ids);
        }
      }));
      sampling = false;
      await sampler;
      const [{ n }] = await pg.use((sql) =>
        sql<{ n: number }[]>`
          select count(*)::int as n from ${sql(table)} where descripcion = ${marker}`
      );
      assert.equal(acknowledged.length, 400);
      assert.equal(n, acknowledged.length, "every acknowledged insert is in the table");
      assert.ok(peak <= 5, `at most 5 connections at once, saw ${peak}`);
      assert.ok(peak >= 1);
      assert.equal(pg.stats().inUse, 0);
    },
  );

  await t.step(
    "aborting the signal cancels the running statement on the server and rejects with signal.reason",
    async () => {
      await using pg = open("cancel")[0];
      const marker = `cancel_${crypto.randomUUID().slice(0, 8)}`;
      const running = async () => {
        const [{ n }] = await target.db.admin<{ n: number }[]>`
          select count(*)::int as n from pg_stat_activity
          where state = 'active' and query like ${"%" + marker + "%"} and pid <> pg_backend_pid()`;
        return n;
      };
      const controller = new AbortController();
      const reason = new Error("caller gave up");
      const sleeping = pg.query(`select pg_sleep(60) as ${marker}`, [], {
        signal: controller.signal,
      });
      sleeping.catch(() => {});
      await eventually("the statement runs on the server", async () => (await running()) === 1);
      controller.abort(reason);
      await assert.rejects(sleeping, (error) => error === reason);
      await eventually(
        "the statement is gone from the server",
        async () => (await running()) === 0,
      );
      assert.equal(pg.stats().inUse, 0);
      const [row] = await pg.query<{ ok: number }[]>`select 1 as ok`;
      assert.equal(row.ok, 1, "the pool serves again after a cancellation");
    },
  );

  await t.step(
    "a wrong password gives a clear error without the password and opens the breaker",
    async () => {
      const secret = `wrong-${crypto.randomUUID()}`;
      await using pg = createPostgresPool({
        url: target.urlWith({ password: secret }),
        ...target.driver,
        pool: { max: 2, acquireTimeoutMs: 20_000, breaker: { threshold: 2, cooldownMs: 60_000 } },
      });
      const error = await pg.query`select 1`.then(
        () => assert.fail("a wrong password must not connect"),
        (e: unknown) => e,
      );
      assert.ok(
        error instanceof CircuitOpenError || error instanceof PoolTimeoutError,
        `got ${error}`,
      );
      const cause = (error as Error).cause;
      assert.ok(cause instanceof PostgresConnectionError, `cause is ${cause}`);
      assert.match(cause.message, /authentication failed/i);
      assert.match(cause.message, /password/i, "the message says what to check");
      for (const text of [String(error), String(cause), Deno.inspect(error, { depth: 10 })]) {
        assert.ok(!text.includes(secret), "the password never appears in an error");
      }
      await eventually("the breaker opens", () => pg.stats().breaker === "open");
      await assert.rejects(pg.query`select 1`, CircuitOpenError);
    },
  );

  {
    const [pg] = open("teardown");
    await pg.use((sql) => sql`drop table if exists ${sql(table)}`);
    await pg.close();
  }
}

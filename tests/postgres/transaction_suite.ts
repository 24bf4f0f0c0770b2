/**
 * Transactions that cannot lie: `transaction()` resolves only on a real commit, a connection is
 * never lent inside a transaction whatever SQL its last borrower ran, and nested transactions are
 * savepoints. Run directly and through PgBouncer in transaction mode (direct_test.ts,
 * pgbouncer_test.ts).
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  createPostgresPool,
  type PostgresPool,
  TransactionRolledBackError,
} from "../../adapters/postgres/mod.ts";
import { appName, type Target } from "./target.ts";

/** Runs every transaction behaviour as a step of `t` against `target`. */
export async function transactionSuite(t: Deno.TestContext, target: Target): Promise<void> {
  const table = target.db.table(`tx_${crypto.randomUUID().slice(0, 6)}`);
  const open = (): PostgresPool =>
    createPostgresPool({
      url: target.url,
      ...target.driver,
      connection: { application_name: appName("tx") },
      pool: { max: 1 },
    });
  const stored = async (pg: PostgresPool, note: string): Promise<number> => {
    const [{ n }] = await pg.query<{ n: number }[]>(
      `select count(*)::int as n from ${table} where note = $1`,
      [note],
    );
    return n;
  };
  {
    await using pg = open();
    await pg.query(`create table ${table} (id serial primary key, note text not null)`);
  }

  await t.step(
    "transaction() rejects with TransactionRolledBackError, the server's error as cause, when a statement failed and the callback went on",
    async () => {
      await using pg = open();
      const error = await pg.transaction(async (sql) => {
        await sql.unsafe(`insert into ${table} (note) values ('lost')`);
        await sql`select 1 / 0`.catch(() => {}); // caught: the callback goes on
        return "looks fine";
      }).then(() => assert.fail("a rolled-back transaction must not resolve"), (e: unknown) => e);
      assert.ok(error instanceof TransactionRolledBackError, `got ${error}`);
      assert.match(error.message, /rolled back/);
      assert.equal((error.cause as { code?: string }).code, "22012", "division_by_zero");
      assert.equal(await stored(pg, "lost"), 0, "nothing was stored");
    },
  );

  const leftOpen = [
    [
      "a multi-statement text query",
      (note: string) => [`begin; insert into ${table} (note) values ('${note}')`],
    ],
    [
      "COMMIT AND CHAIN",
      (
        note: string,
      ) => ["begin", "commit and chain", `insert into ${table} (note) values ('${note}')`],
    ],
    [
      "ROLLBACK AND CHAIN",
      (
        note: string,
      ) => ["begin", "rollback and chain", `insert into ${table} (note) values ('${note}')`],
    ],
  ] as const;
  for (const [how, statements] of leftOpen) {
    await t.step(
      `a connection left in a transaction by ${how} is rolled back before it is lent again`,
      async () => {
        await using pg = open();
        const note = `abandoned_${crypto.randomUUID().slice(0, 6)}`;
        await pg.use(async (sql) => {
          for (const text of statements(note)) await sql.unsafe(text);
        });
        // SAVEPOINT works only inside a transaction: it fails unless the borrower starts clean.
        await assert.rejects(pg.query("savepoint probe"), /transaction block/);
        await pg.transaction((sql) => sql.unsafe(`insert into ${table} (note) values ('later')`));
        assert.equal(
          await stored(pg, note),
          0,
          "a later transaction did not commit the abandoned rows",
        );
        assert.equal(
          pg.stats().created,
          1,
          "the same connection, rolled back rather than replaced",
        );
      },
    );
  }

  await t.step(
    "a nested transaction() is a savepoint: when it throws, only its own work is undone and the outer one commits",
    async () => {
      await using pg = open();
      await pg.transaction(async (sql) => {
        await sql.unsafe(`insert into ${table} (note) values ('outer kept')`);
        await assert.rejects(
          pg.transaction(async (inner) => {
            await inner.unsafe(`insert into ${table} (note) values ('inner undone')`);
            throw new Error("inner fails");
          }),
          /inner fails/,
        );
        await sql.unsafe(`insert into ${table} (note) values ('outer after')`);
      });
      assert.equal(await stored(pg, "outer kept"), 1);
      assert.equal(await stored(pg, "outer after"), 1);
      assert.equal(await stored(pg, "inner undone"), 0);
    },
  );

  await t.step(
    "a nested transaction() whose statement failed and was caught rejects, and the outer one goes on",
    async () => {
      await using pg = open();
      const marker = `nested_${crypto.randomUUID().slice(0, 6)}`;
      await pg.transaction(async (sql) => {
        const inner = pg.transaction(async (tx) => {
          await tx.unsafe(`insert into ${table} (note) values ('${marker} inner')`);
          await tx`select 1 / 0`.catch(() => {});
        });
        await assert.rejects(inner, TransactionRolledBackError);
        await sql.unsafe(`insert into ${table} (note) values ('${marker} outer')`);
      });
      assert.equal(await stored(pg, `${marker} outer`), 1);
      assert.equal(await stored(pg, `${marker} inner`), 0);
    },
  );

  {
    await using pg = open();
    await pg.query(`drop table if exists ${table}`);
  }
}

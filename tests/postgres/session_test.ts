/**
 * Session state does not leak to the next borrower: with the default `reset: "always"` the next
 * borrower gets a session as clean as a new connection's; `"when-needed"` costs nothing after
 * plain statements; `"never"` only rolls back. Direct connections: behind PgBouncer in
 * transaction mode session state belongs to PgBouncer's server connections, not to ours.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  createPostgresPool,
  type PostgresClient,
  type PostgresPool,
  type SessionReset,
} from "../../adapters/postgres/mod.ts";
import { type Database, startDatabase } from "../../tasks/setup/postgres.ts";

/** One kind of session state: how a borrower leaves it, and how the next one sees it. */
interface Leftover {
  name: string;
  leave: (sql: PostgresClient) => Promise<unknown>;
  /** What the next borrower sees: the same value as on a new connection when clean. */
  see: (sql: PostgresClient) => Promise<unknown>;
}

const show = (setting: string) => async (sql: PostgresClient) =>
  (await sql.unsafe(`show ${setting}`))[0];

const LEFTOVERS: Leftover[] = [
  {
    name: "SET search_path",
    leave: (sql) => sql`set search_path = pg_catalog`,
    see: show("search_path"),
  },
  {
    name: "SET statement_timeout",
    leave: (sql) => sql`set statement_timeout = 1234`,
    see: show("statement_timeout"),
  },
  {
    name: "SET default_transaction_read_only",
    leave: (sql) => sql`set default_transaction_read_only = on`,
    see: show("default_transaction_read_only"),
  },
  { name: "SET timezone", leave: (sql) => sql`set timezone = 'Asia/Tokyo'`, see: show("timezone") },
  {
    name: "set_config() in a select",
    leave: (sql) => sql`select set_config('application_name', 'hijacked', false)`,
    see: show("application_name"),
  },
  {
    name: "SET ROLE",
    leave: (sql) => sql`set role poolkit_probe`,
    see: (sql) => sql`select current_user`,
  },
  {
    name: "SET SESSION AUTHORIZATION",
    leave: (sql) => sql`set session authorization poolkit_probe`,
    see: (sql) => sql`select session_user, current_user`,
  },
  {
    name: "a temporary table",
    leave: (sql) => sql`create temp table leftover (x int)`,
    see: (sql) => sql`select to_regclass('pg_temp.leftover')::text as t`,
  },
  {
    name: "an advisory lock",
    leave: (sql) => sql`select pg_advisory_lock(4242)`,
    see: (sql) =>
      sql`select count(*)::int as n from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()`,
  },
  {
    name: "LISTEN",
    leave: (sql) => sql`listen leftover_channel`,
    see: (sql) => sql`select pg_listening_channels()`,
  },
  {
    name: "a WITH HOLD cursor",
    leave: (sql) => sql`declare leftover_cursor cursor with hold for select 1`,
    see: (sql) => sql`select name from pg_cursors`,
  },
  {
    name: "a PREPAREd statement",
    leave: (sql) => sql`prepare leftover_statement as select 1`,
    see: (sql) => sql`select name from pg_prepared_statements where from_sql`,
  },
];

function open(db: Database, reset?: SessionReset, debug?: (query: string) => void): PostgresPool {
  return createPostgresPool({
    url: db.url,
    reset,
    debug: debug && ((_connection: number, query: string) => debug(query)),
    connection: { application_name: "session_test" },
    pool: { max: 1 },
  });
}

Deno.test("postgres session reset", async (t) => {
  await using db = await startDatabase();
  await db.admin`drop role if exists poolkit_probe`;
  await db.admin`create role poolkit_probe`;

  for (const leftover of LEFTOVERS) {
    await t.step(
      `the next borrower does not see ${leftover.name} (reset "always", the default)`,
      async () => {
        await using fresh = open(db);
        const clean = await fresh.use(leftover.see);
        await using pg = open(db);
        await pg.use(leftover.leave);
        assert.deepEqual(await pg.use(leftover.see), clean);
        assert.equal(pg.stats().created, 1, "the same connection, cleaned");
      },
    );
  }

  await t.step("postgres.js's own prepared statements keep working across resets", async () => {
    await using pg = open(db);
    for (let i = 0; i < 3; i++) {
      const [row] = await pg.use((sql) => sql<{ n: number }[]>`select ${i}::int as n`);
      assert.equal(row.n, i);
    }
    await pg.transaction(async (sql) => {
      await sql`select ${1}::int as n`; // a prepared statement, reused inside a transaction
    });
    assert.equal(pg.stats().created, 1);
  });

  await t.step(
    "a prepared statement made inside a server function never reaches the next borrower",
    async () => {
      await using pg = open(db);
      const see = (sql: PostgresClient) =>
        sql<{ name: string }[]>`select name from pg_prepared_statements where from_sql`;
      await pg.use((sql) =>
        sql`do $$ begin execute 'prepare hidden_statement as select 1'; end $$`
      );
      assert.deepEqual((await pg.use(see)).map((r) => r.name), []);
      assert.equal(pg.stats().created, 1, "the same connection, cleaned");
    },
  );

  await t.step(
    "a clean release sends no rollback: the transaction status comes from the server's ReadyForQuery",
    async () => {
      const sent: string[] = [];
      await using pg = open(db, "never", (query) => sent.push(query));
      await pg.query`select 1`;
      sent.length = 0;
      await pg.use((sql) => sql`select 2`);
      await pg.transaction((sql) => sql`select 3`);
      assert.deepEqual(sent.map((q) => q.trim()), ["select 2", "begin", "select 3", "commit"]);
    },
  );

  await t.step(
    'reset "never" leaves session state for the next borrower, but no transaction',
    async () => {
      await using pg = open(db, "never");
      await pg.use(async (sql) => {
        await sql`set search_path = pg_catalog`;
        await sql`begin`;
      });
      const row = await pg.use(show("search_path")) as unknown as { search_path: string };
      assert.equal(row.search_path, "pg_catalog");
      await assert.rejects(pg.query("savepoint probe"), /transaction block/);
    },
  );

  await db.admin`drop role if exists poolkit_probe`;
});

/**
 * A PgBouncer that accepts logins while its server does not answer (the server behind it hangs,
 * or its network drops packets): PgBouncer logs the client in itself and then holds the first
 * statement while it waits for the server, up to its `query_wait_timeout`. The opening of a
 * connection (login and first statement) is bounded by `connect_timeout`; a caller's deadline
 * and `close()` do not wait for an opening that is held.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createPostgresPool, PostgresTimeoutError } from "../../adapters/postgres/mod.ts";
import type { PostgresPool } from "../../adapters/postgres/mod.ts";
import { startFaultProxy } from "../../tasks/setup/fault_proxy.ts";
import { hasPgBouncer, startPgBouncer } from "../../tasks/setup/pgbouncer.ts";
import { hasPostgresBinaries, startDatabase } from "../../tasks/setup/postgres.ts";

const ignore = !(await hasPostgresBinaries()) || !(await hasPgBouncer());

Deno.test({
  name: "a PgBouncer that holds a new connection's first statement fails its opening at " +
    "connect_timeout",
  ignore,
  fn: () =>
    withHeldOpening(1, async (pg) => {
      await assert.rejects(pg.query("select 1", [], { timeoutMs: 5_000 }));
      const [host] = pg.stats().hosts;
      assert.match(host.lastError ?? "no failed opening", /CONNECT_TIMEOUT/);
    }),
});

Deno.test({
  name: "a call's timeoutMs and close() end while a new connection's opening is held",
  ignore,
  fn: () =>
    withHeldOpening(60, async (pg) => {
      await assert.rejects(
        pg.query("select 1", [], { timeoutMs: 500 }),
        PostgresTimeoutError,
      );
      assert.equal(pg.stats().creating, 1, "the opening is still held");
      await pg.close();
      assert.equal(pg.stats().creating, 0);
    }),
});

/**
 * Runs `fn` with a pool (`connect_timeout` in seconds) through a PgBouncer (its default waits,
 * `query_wait_timeout` off: it holds a statement until the server answers) whose server stopped
 * answering after the pool's first connection; the pool's next call needs a new connection.
 */
async function withHeldOpening(
  connectTimeout: number,
  fn: (pg: PostgresPool) => Promise<void>,
): Promise<void> {
  await using db = await startDatabase();
  await using proxy = await startFaultProxy({ port: db.port });
  const upstream = new URL(db.url);
  upstream.port = String(proxy.port);
  await using bouncer = await startPgBouncer({ url: upstream.href }, {
    poolMode: "transaction",
    settings: { query_wait_timeout: 0 },
  });
  await using pg = createPostgresPool({
    url: bouncer.url,
    prepare: false, // transaction pooling
    connect_timeout: connectTimeout,
    pool: { max: 2 },
  });
  await pg.query`select 1`; // PgBouncer now knows the server: it answers logins itself
  proxy.setMode("blackhole");
  pg.pool.invalidate();
  try {
    await fn(pg);
  } finally {
    proxy.setMode("pass");
  }
}

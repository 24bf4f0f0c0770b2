/**
 * `targetSessionAttrs` on two real servers, one of them read-only (`default_transaction_read_only
 * = on`, set with `ALTER SYSTEM` and a reload): each new connection is checked before it is lent,
 * a host's role change reported by the server retires its connections, and a write refused with
 * `25006` retires the connection and is retried on a host that accepts writes.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  createPostgresPool,
  noPool,
  PostgresConnectionError,
  type PostgresPool,
} from "../../adapters/postgres/mod.ts";
import { type Database, startDatabase } from "../../tasks/setup/postgres.ts";
import postgres from "postgres";
import { eventually, warm } from "./target.ts";

/**
 * Makes `db` read-only for every session, new and existing (or writable again). Returns once a
 * new session sees it: the server has then reloaded, and signalled the existing sessions.
 */
async function setReadOnly(db: Database, on: boolean, password: string): Promise<void> {
  const value = on ? "on" : "off";
  await db.admin.unsafe(`alter system set default_transaction_read_only = ${value}`);
  await db.admin`select pg_reload_conf()`;
  await eventually(
    `a new session on port ${db.port} is read-${on ? "only" : "write"}`,
    async () => {
      const sql = postgres(db.urlWith({ password }), { max: 1, onnotice: () => {} });
      try {
        const [row] = await sql`show default_transaction_read_only`;
        return row.default_transaction_read_only === value;
      } finally {
        await sql.end();
      }
    },
  );
}

/** The server port each of `n` calls ran on. */
async function serverPorts(pg: PostgresPool, n: number): Promise<number[]> {
  const ports: number[] = [];
  for (let i = 0; i < n; i++) {
    const [{ port }] = await pg.query<{ port: number }[]>`select inet_server_port() as port`;
    ports.push(port);
  }
  return ports;
}

Deno.test("postgres targetSessionAttrs against two servers", async (t) => {
  await using a = await startDatabase({ throwaway: true });
  await using b = await startDatabase({ throwaway: true });
  // One URL for both: the second server's role gets the first one's password.
  await b.admin.unsafe(`alter role ${b.user} password '${a.password}'`);
  for (const db of [a, b]) {
    await db.admin`create table if not exists hosts_note (id serial primary key, note text)`;
  }
  const hostsAB = [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`];
  const pool = (targetSessionAttrs: "any" | "read-write" | "read-only", extra = {}) =>
    createPostgresPool({ url: a.url, hosts: hostsAB, targetSessionAttrs, ...extra });

  await t.step(
    "read-write skips the read-only first host: every connection is on the second",
    async () => {
      await setReadOnly(a, true, a.password);
      await using pg = pool("read-write", { pool: noPool() });
      assert.deepEqual(new Set(await serverPorts(pg, 5)), new Set([b.port]));
      const [first, second] = pg.stats().hosts;
      assert.equal(first.state, "up", "a read-only host is up, only not eligible");
      assert.equal(first.connections, 0);
      assert.equal(second.role, "primary");
      await using lease = await pg.acquire();
      assert.equal(lease.resource.host, hostsAB[1], "each connection knows its host");
    },
  );

  await t.step("read-only picks the read-only host", async () => {
    await setReadOnly(a, false, a.password);
    await setReadOnly(b, true, a.password);
    await using pg = pool("read-only", { pool: noPool() });
    assert.deepEqual(new Set(await serverPorts(pg, 5)), new Set([b.port]));
    await setReadOnly(b, false, a.password);
  });

  await t.step("any takes the first host that answers", async () => {
    await using pg = pool("any", { pool: noPool() });
    assert.deepEqual(new Set(await serverPorts(pg, 3)), new Set([a.port]));
  });

  await t.step("loadBalanceHosts random spreads new connections over both hosts", async () => {
    await using pg = pool("any", { pool: noPool(), loadBalanceHosts: "random" });
    // 40 connections all on one host of two: a chance of 2 in 2^40.
    assert.deepEqual(new Set(await serverPorts(pg, 40)), new Set([a.port, b.port]));
  });

  await t.step(
    "no host with the role asked for: the caller's error names each host and what it was",
    async () => {
      await setReadOnly(a, true, a.password);
      await using pg = createPostgresPool({
        url: a.url,
        hosts: [hostsAB[0]],
        targetSessionAttrs: "read-write",
        pool: { acquireTimeoutMs: 1_000 },
      });
      const error = await pg.query`select 1`.then(() => undefined, (e) => e);
      assert.ok(error instanceof Error);
      let text = "";
      for (let e: unknown = error; e instanceof Error; e = e.cause) text += e.message + " | ";
      assert.match(
        text,
        new RegExp(`no PostgreSQL host is read-write.*${hostsAB[0]}: primary, read-only`),
      );
      await setReadOnly(a, false, a.password);
    },
  );

  await t.step(
    "a connection whose server reports it turned read-only is retired after that statement, before a write fails",
    async () => {
      await setReadOnly(a, false, a.password);
      await using pg = pool("read-write", { pool: { max: 1 } });
      const [{ port: before }] = await pg.query<{ port: number }[]>`
        select inet_server_port() as port`;
      assert.equal(before, a.port);
      await setReadOnly(a, true, a.password);
      await pg.query`select 1`; // its answer carries default_transaction_read_only = on
      assert.deepEqual(new Set(await serverPorts(pg, 3)), new Set([b.port]));
      assert.equal(pg.stats().hosts[0].connections, 0, "the connection to the first host retired");
      assert.equal(pg.stats().errors, 0, "retired connections are destroyed, not failed cleanings");
      await setReadOnly(a, false, a.password);
    },
  );

  await t.step(
    "a session's own SET default_transaction_read_only retires that connection only",
    async () => {
      await setReadOnly(a, false, a.password);
      await using pg = pool("read-write", { pool: { max: 2 } });
      const pids = async () => {
        const seen = new Set<number>();
        await warm(pg, 2);
        await Promise.all([1, 2].map(() =>
          pg.use(async (sql) => {
            const [{ pid }] = await sql`select pg_backend_pid() as pid`;
            seen.add(pid);
            await new Promise((r) => setTimeout(r, 50));
          })
        ));
        return seen;
      };
      const before = await pids();
      await pg.use((sql) => sql`set default_transaction_read_only = on`);
      const after = await pids();
      assert.equal([...after].filter((pid) => before.has(pid)).length, 1);
      assert.equal(pg.stats().hosts[0].role, "primary");
    },
  );

  await t.step(
    "a one-shot write refused as read-only (25006) is retried on a host that accepts writes",
    async () => {
      await setReadOnly(a, false, a.password);
      await using pg = pool("read-write", { pool: { max: 1 } });
      await pg.query`select 1`;
      await setReadOnly(a, true, a.password);
      const [{ port }] = await pg.query<{ port: number }[]>`
        insert into hosts_note (note) values ('retried') returning inet_server_port() as port`;
      assert.equal(port, b.port);
      const [{ n }] = await b.admin<{ n: number }[]>`
        select count(*)::int as n from hosts_note where note = 'retried'`;
      assert.equal(n, 1, "written once, on the second host");
      await setReadOnly(a, false, a.password);
    },
  );

  await t.step(
    "a write refused as read-only (25006) inside transaction() is a clear error, and the connection is retired",
    async () => {
      await setReadOnly(a, false, a.password);
      await using pg = pool("read-write", { pool: { max: 1 } });
      await pg.query`select 1`;
      await setReadOnly(a, true, a.password);
      const error = await pg.transaction((sql) =>
        sql`insert into hosts_note (note) values ('in a transaction')`
      ).then(() => undefined, (e) => e);
      assert.ok(error instanceof PostgresConnectionError, String(error));
      assert.equal(error.code, "25006");
      assert.match(error.message, /refused a write as read-only/);
      const [{ port }] = await pg.query<{ port: number }[]>`select inet_server_port() as port`;
      assert.equal(port, b.port, "the next call runs on a host that accepts writes");
      await setReadOnly(a, false, a.password);
    },
  );
});

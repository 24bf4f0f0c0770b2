/**
 * Several hosts, some of them dead: a host that refuses or never answers is skipped by the
 * connections that follow, so it costs a caller its connect timeout once; and when no host
 * answers, callers get an error naming each one within their deadline. One real server; the
 * dead hosts are fault proxies (`reset`: accepts and closes at once; `blackhole`: never answers).
 *
 * @module
 */
import assert from "node:assert/strict";
import { createPostgresPool, noPool, type PostgresPool } from "../../adapters/postgres/mod.ts";
import { startFaultProxy } from "../../tasks/setup/fault_proxy.ts";
import { startDatabase } from "../../tasks/setup/postgres.ts";

/** The server port each of `n` calls ran on (each on a new connection, with `noPool()`). */
async function serverPorts(pg: PostgresPool, n: number): Promise<Set<number>> {
  const ports = new Set<number>();
  for (let i = 0; i < n; i++) {
    const [{ port }] = await pg.query<{ port: number }[]>`select inet_server_port() as port`;
    ports.add(port);
  }
  return ports;
}

/** Every message in an error's cause chain, for what a caller can read. */
function messages(error: unknown): string {
  const out: string[] = [];
  for (let e = error, i = 0; e instanceof Error && i < 5; e = e.cause, i++) out.push(e.message);
  return out.join(" <- ");
}

Deno.test("postgres with dead hosts in the list", async (t) => {
  await using db = await startDatabase();
  const local = (port: number) => `127.0.0.1:${port}`;

  await t.step(
    "a first host that refuses is tried once: the connections after it go straight to the next",
    async () => {
      await using dead = await startFaultProxy({ port: db.port, mode: "reset" });
      await using pg = createPostgresPool({
        url: db.url,
        hosts: [local(dead.port), local(db.port)],
        pool: noPool(),
      });
      const calls = 20;
      assert.deepEqual(await serverPorts(pg, calls), new Set([db.port]));
      assert.ok(
        dead.accepted < calls,
        `the dead host was asked ${dead.accepted} times for ${calls} connections`,
      );
      const [first, second] = pg.stats().hosts;
      assert.equal(first.state, "down");
      assert.ok(first.lastError !== undefined && !first.lastError.includes(db.password));
      assert.equal(second.state, "up");
      assert.equal(pg.stats().createErrors, 0, "no connect failed as far as the pool is concerned");
    },
  );

  await t.step(
    "a first host that never answers costs one connect timeout, then is skipped",
    async () => {
      await using silent = await startFaultProxy({ port: db.port, mode: "blackhole" });
      await using pg = createPostgresPool({
        url: db.url,
        hosts: [local(silent.port), local(db.port)],
        connect_timeout: 1,
        pool: noPool(),
      });
      const calls = 20;
      assert.deepEqual(await serverPorts(pg, calls), new Set([db.port]));
      assert.ok(silent.accepted < calls, `asked ${silent.accepted} times for ${calls} connections`);
      assert.match(pg.stats().hosts[0].lastError ?? "", /timed out|CONNECT_TIMEOUT/i);
      silent.setMode("pass"); // lets a probe under way finish, so close does not wait for it
    },
  );

  await t.step(
    "a host that comes back is used again, in its place in the order",
    async () => {
      await using proxy = await startFaultProxy({ port: db.port, mode: "reset" });
      await using pg = createPostgresPool({
        url: db.url,
        hosts: [local(proxy.port), local(db.port)],
        pool: noPool(),
      });
      const events = pg.events();
      await pg.query`select 1`;
      assert.equal(pg.stats().hosts[0].state, "down");
      proxy.setMode("pass");
      const seen: string[] = [];
      for await (const event of events) {
        if (event.type === "host-down" || event.type === "host-up") seen.push(event.type);
        if (event.type === "host-up") break;
      }
      assert.deepEqual(seen, ["host-down", "host-up"]);
      const [{ port }] = await pg.query<{ port: number }[]>`select inet_server_port() as port`;
      assert.equal(port, db.port, "the server behind the first host");
      assert.equal(pg.stats().hosts[0].state, "up");
      assert.ok(proxy.accepted >= 2, "the new connection went through the first host");
    },
  );

  await t.step(
    "when no host answers, a caller gets an error naming each host within its deadline",
    async () => {
      await using a = await startFaultProxy({ port: db.port, mode: "reset" });
      await using b = await startFaultProxy({ port: db.port, mode: "reset" });
      await using pg = createPostgresPool({
        url: db.url,
        hosts: [local(a.port), local(b.port)],
        pool: { acquireTimeoutMs: 1_500 },
      });
      const error = await pg.query`select 1`.then(() => undefined, (e) => e);
      assert.ok(error instanceof Error, "the call failed");
      const text = messages(error);
      assert.match(text, /no PostgreSQL host is any/);
      assert.ok(text.includes(local(a.port)) && text.includes(local(b.port)), text);
      assert.ok(!text.includes(db.password), "no password in what the caller reads");
    },
  );
});

/**
 * Failover without a restart, against a real primary and streaming standby: the primary crashes
 * (`pg_ctl stop -m immediate`) under 20 looping callers of a `read-write` pool over
 * `primary,standby`, the standby is promoted (`pg_ctl promote`), and the pool writes on the new
 * primary; the old primary then comes back as a standby and the pool does not write to it.
 * Attempts are counted in the servers' own logs (`log_connections`) and `pg_stat_activity`.
 *
 * Bounds on time are generous on purpose (the box is shared): they catch a hang, not slowness.
 * The time to the first write after promotion is measured by `deno task demo:failover`.
 *
 * @module
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { createPostgresPool } from "../../adapters/postgres/mod.ts";
import { hasPostgresBinaries } from "../../tasks/setup/postgres.ts";
import { startCluster } from "../../tasks/setup/postgres_cluster.ts";
import {
  everyCallerHas,
  failed,
  messageOf,
  portOf,
  startWriters,
  succeeded,
} from "./failover_calls.ts";
import { appName, eventually } from "./target.ts";

const ignore = !(await hasPostgresBinaries());
const CALLERS = 20;
/** Each call's deadline (`timeoutMs`): the wait for a connection plus the statement. */
const DEADLINE_MS = 3_000;
/** What a settled call may take beyond its deadline on a busy 2-core box: a hang is far more. */
const SLACK_MS = 2_000;
/** How long writes may take to resume after the promotion before the test calls it a failure. */
const RESUME_MS = 30_000;

Deno.test({
  name: "a read-write pool writes on the promoted standby, no caller waits past its deadline, " +
    "and calls while no primary exists fail saying so",
  ignore,
  fn: async () => {
    await using cluster = await startCluster({ standbys: 1 });
    const [primary, standby] = cluster.servers;
    await primary.admin`create table writes (caller int)`;
    await cluster.replicated();
    const app = appName("failover");
    await using pg = createPostgresPool({
      url: cluster.url,
      targetSessionAttrs: "read-write",
      connect_timeout: 2,
      connection: { application_name: app },
      pool: { max: 10 },
    });
    await using callers = await startWriters(pg, CALLERS, DEADLINE_MS);

    await primary.stop("immediate");
    const crashedAt = performance.now();
    await callers.until(
      "a call started after the crash to fail",
      (calls) => failed(calls).some((c) => c.startMs > crashedAt),
    );
    const promotingAt = performance.now();
    await cluster.promote(standby);
    const promotedAt = performance.now();
    await callers.until(
      "a write by every caller after the promotion",
      (calls) => everyCallerHas(calls, CALLERS, (c) => c.startMs > promotedAt),
      RESUME_MS,
    );
    const calls = await callers.stop();

    for (const call of calls) {
      const took = call.endMs - call.startMs;
      assert.ok(
        took <= DEADLINE_MS + SLACK_MS,
        `caller ${call.caller} waited ${Math.round(took)} ms (deadline ${DEADLINE_MS} ms)`,
      );
    }
    const afterCrash = succeeded(calls).filter((c) => c.startMs > crashedAt);
    assert.ok(afterCrash.length > 0);
    assert.deepEqual(new Set(afterCrash.map(portOf)), new Set([standby.port]));

    // Calls made and settled while no server took writes: each says there is no primary, and
    // names the hosts.
    const noPrimary = calls.filter((c) => c.startMs > crashedAt && c.endMs < promotingAt);
    assert.ok(noPrimary.length > 0, "some calls ran while no primary existed");
    for (const call of noPrimary) {
      assert.ok("error" in call, "no call succeeds while no primary exists");
      const message = messageOf(call.error);
      assert.match(message, /read-write/, message);
      assert.ok(message.includes(primary.host) && message.includes(standby.host), message);
    }

    const hosts = pg.stats().hosts;
    const old = hosts.find((h) => h.host === primary.host);
    assert.equal(old?.connections, 0, "no pooled connection on the crashed host");
    assert.equal(hosts.find((h) => h.host === standby.host)?.role, "primary");
  },
});

Deno.test({
  name: "after the old primary rejoins as a standby, a read-write pool does not write to it",
  ignore,
  fn: async () => {
    await using cluster = await startCluster({ standbys: 1 });
    const [primary, standby] = cluster.servers;
    await primary.admin`create table writes (caller int)`;
    await cluster.replicated();
    const app = appName("rejoin");
    await using pg = createPostgresPool({
      url: cluster.url, // the old primary stays first in the list
      targetSessionAttrs: "read-write",
      connect_timeout: 2,
      connection: { application_name: app },
      pool: { max: 5, maxLifetimeMs: 500 }, // new connections all the time, each one checked
    });
    await using callers = await startWriters(pg, 5, DEADLINE_MS);
    await primary.stop("immediate");
    await cluster.promote(standby);
    await cluster.rejoin(primary);
    const rejoinedAt = performance.now();
    const opened = await standby.loggedConnections(app);
    const tried = await primary.loggedConnections(app); // its log goes on from before the crash
    await callers.until(
      "writes by every caller on connections opened after the rejoin",
      (calls) =>
        succeeded(calls).filter((c) => c.startMs > rejoinedAt).length >= 100 &&
        everyCallerHas(calls, 5, (c) => c.startMs > rejoinedAt + 1_000),
      RESUME_MS,
    );
    const calls = await callers.stop();
    const afterRejoin = calls.filter((c) => c.startMs > rejoinedAt);
    assert.deepEqual(failed(afterRejoin).map((c) => messageOf(c.error)), []);
    assert.deepEqual(new Set(afterRejoin.map(portOf)), new Set([standby.port]));
    const openedSince = await standby.loggedConnections(app) - opened;
    const triedSince = await primary.loggedConnections(app) - tried;
    assert.ok(openedSince > 1, "new connections were made on the primary");
    // Counted in its own log: once seen as a standby, it is not logged in to before each new
    // connection to the primary (libpq would: it is first in the list).
    assert.ok(
      triedSince < openedSince,
      `${triedSince} logins on the standby, ${openedSince} opened`,
    );
    await eventually(
      "no connection of the pool stays on it",
      async () => (await primary.activity(app)).length === 0,
    );
    assert.equal(pg.stats().hosts.find((h) => h.host === primary.host)?.role, "standby");
  },
});

Deno.test({
  name: "a write that meets a host turned read-only (25006) retires that connection",
  ignore,
  fn: async () => {
    await using cluster = await startCluster({ standbys: 0 });
    const { primary } = cluster;
    await primary.admin`create table writes (caller int)`;
    const app = appName("read-only");
    await using pg = createPostgresPool({
      url: cluster.url,
      targetSessionAttrs: "read-write",
      connection: { application_name: app },
      pool: { max: 3 },
    });
    // Three connections at once: each call holds its own until all three have written.
    const { promise: written, resolve } = Promise.withResolvers<void>();
    let count = 0;
    await Promise.all([1, 2, 3].map((n) =>
      pg.use(async (sql) => {
        await sql`insert into writes values (${n})`;
        if (++count === 3) resolve();
        await written;
      })
    ));
    const before = await primary.activity(app);
    assert.equal(before.length, 3);
    // Every session, the pooled ones included, turns read-only, as on a demoted primary.
    await primary.admin`alter system set default_transaction_read_only = on`;
    await primary.admin`select pg_reload_conf()`;
    await waitForSetting(primary.url, "default_transaction_read_only", "on");
    const error = await pg.query("insert into writes values (4)", [], { timeoutMs: DEADLINE_MS })
      .then(() => assert.fail("a write on a read-only host must fail"), (e: unknown) => e);
    assert.match(messageOf(error), /read-write|read-only|25006/);
    const pids = new Set(before.map((r) => r.pid));
    // The pool closes the socket at once; the server's backend ends a moment later.
    await eventually(
      "the connection that met 25006 is closed",
      async () => (await primary.activity(app)).filter((r) => pids.has(r.pid)).length < 3,
    );
  },
});

/** Waits until a new session on `url` sees `name` = `value` (the reload is asynchronous). */
async function waitForSetting(url: string, name: string, value: string): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    for (let i = 0; i < 100; i++) {
      const [row] = await sql.unsafe(`show ${name}`);
      if (row[name] === value) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`${name} did not become ${value}`);
  } finally {
    await sql.end();
  }
}

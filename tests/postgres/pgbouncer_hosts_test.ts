/**
 * PgBouncer in front of each host (transaction pooling), the pool given both PgBouncers in one
 * multi-host URL: writes go through the primary's PgBouncer, move to the promoted standby's after
 * a crash, and do not go back through the old primary's PgBouncer once a standby stands behind it
 * (its sessions there turn read-only: `25006`).
 *
 * @module
 */
import assert from "node:assert/strict";
import { createPostgresPool } from "../../adapters/postgres/mod.ts";
import { startCallers } from "../../tasks/setup/looping_callers.ts";
import { hasPgBouncer, startPgBouncer } from "../../tasks/setup/pgbouncer.ts";
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
import { appName } from "./target.ts";

const CALLERS = 10;
const DEADLINE_MS = 3_000;

/**
 * PgBouncer settings for a host that can fail: a client waits at most 1 s for a server
 * (default 120 s) and a failed server login is retried after 1 s (default 15 s), so a statement
 * through the PgBouncer of a dead server fails instead of waiting.
 */
const FAILOVER_READY = { query_wait_timeout: 1, server_login_retry: 1 };

Deno.test({
  name: "through a PgBouncer per host, writes move to the promoted standby and stay off the old " +
    "primary",
  ignore: !(await hasPostgresBinaries()) || !(await hasPgBouncer()),
  fn: () => failoverThroughPgBouncers(FAILOVER_READY),
});

Deno.test({
  name: "through a PgBouncer per host with its default waits, writes move to the promoted standby",
  ignore: !(await hasPostgresBinaries()) || !(await hasPgBouncer()),
  fn: () => failoverThroughPgBouncers({}),
});

/** The failover, each server behind a PgBouncer with `settings`. */
async function failoverThroughPgBouncers(settings: Record<string, number>): Promise<void> {
  await using cluster = await startCluster({ standbys: 1 });
  const [primary, standby] = cluster.servers;
  await using first = await startPgBouncer(primary, { poolMode: "transaction", settings });
  await using second = await startPgBouncer(standby, { poolMode: "transaction", settings });
  await primary.admin`create table writes (caller int)`;
  await cluster.replicated();
  const url = cluster.url.replace(
    `${primary.host},${standby.host}`,
    `127.0.0.1:${first.port},127.0.0.1:${second.port}`,
  );
  const app = appName("bouncers");
  await using pg = createPostgresPool({
    url,
    targetSessionAttrs: "read-write",
    prepare: false, // transaction pooling
    connect_timeout: 2,
    connection: { application_name: app },
    pool: { max: 5 },
  });
  await using callers = await startWriters(pg, CALLERS, DEADLINE_MS);
  assert.deepEqual(new Set(succeeded(callers.calls).map(portOf)), new Set([primary.port]));

  await primary.stop("immediate");
  await cluster.promote(standby);
  const promotedAt = performance.now();
  await callers.until(
    "a write by every caller after the promotion",
    (calls) => everyCallerHas(calls, CALLERS, (c) => c.startMs > promotedAt),
  );
  await cluster.rejoin(primary); // the first PgBouncer now fronts a standby
  const rejoinedAt = performance.now();
  await callers.until(
    "writes by every caller after the rejoin",
    (calls) => everyCallerHas(calls, CALLERS, (c) => c.startMs > rejoinedAt + 1_000),
  );
  const calls = await callers.stop();

  const late = calls.filter((c) => c.startMs > promotedAt);
  assert.deepEqual(new Set(succeeded(late).map(portOf)), new Set([standby.port]));
  const afterRejoin = calls.filter((c) => c.startMs > rejoinedAt + 1_000);
  assert.deepEqual(failed(afterRejoin).map((c) => messageOf(c.error)), []);
  const old = pg.stats().hosts.find((h) => h.host === `127.0.0.1:${first.port}`);
  assert.equal(old?.connections, 0, "no pooled connection on the old primary's PgBouncer");
}

Deno.test({
  name: "a PgBouncer whose server is down gives callers errors, not an unhandled rejection",
  ignore: !(await hasPostgresBinaries()) || !(await hasPgBouncer()),
  fn: async () => {
    await using cluster = await startCluster({ standbys: 0 });
    await using bouncer = await startPgBouncer(cluster.primary, { poolMode: "transaction" });
    await using pg = createPostgresPool({
      url: bouncer.url,
      prepare: false,
      connect_timeout: 2,
      pool: { max: 3 },
    });
    await pg.query`select 1`;
    await cluster.primary.stop("immediate");
    await using callers = startCallers(3, () => pg.query("select 1", [], { timeoutMs: 1_000 }));
    await callers.until("failed calls", (calls) => failed(calls).length >= 10);
    const calls = await callers.stop();
    assert.ok(failed(calls).length >= 10);
  },
});

/**
 * The primary-with-standbys helper itself: a standby streams what the primary writes, a promoted
 * standby takes writes, a crashed old primary comes back as a standby of the new one, and
 * synchronous replication is set on the first primary only.
 *
 * @module
 */
import assert from "node:assert/strict";
import { leftInTmp } from "./left_in_tmp.ts";
import { hasPostgresBinaries } from "../../tasks/setup/postgres.ts";
import { startCluster } from "../../tasks/setup/postgres_cluster.ts";

const ignore = !(await hasPostgresBinaries());

Deno.test({
  name: "a standby streams what the primary writes, and refuses writes itself",
  ignore,
  fn: async () => {
    await using cluster = await startCluster({ standbys: 1 });
    const [primary, standby] = cluster.servers;
    assert.equal(await primary.inRecovery(), false);
    assert.equal(await standby.inRecovery(), true);
    await primary.admin`create table replicated (n int)`;
    await primary.admin`insert into replicated select generate_series(1, 100)`;
    await cluster.replicated();
    const [row] = await standby.admin<{ n: number }[]>`select count(*)::int as n from replicated`;
    assert.equal(row.n, 100);
    await assert.rejects(standby.admin`insert into replicated values (1)`, { code: "25006" });
  },
});

Deno.test({
  name: "after a crash of the primary, the promoted standby takes writes",
  ignore,
  fn: async () => {
    await using cluster = await startCluster({ standbys: 1 });
    const [primary, standby] = cluster.servers;
    await primary.admin`create table kept (n int)`;
    await cluster.replicated();
    await primary.stop("immediate");
    await cluster.promote(standby);
    assert.equal(cluster.primary, standby);
    assert.equal(await standby.inRecovery(), false);
    await standby.admin`insert into kept values (1)`;
    assert.deepEqual(cluster.standbys, []);
  },
});

Deno.test({
  name: "a crashed old primary rejoins as a standby of the new one and streams from it",
  ignore,
  fn: async () => {
    await using cluster = await startCluster({ standbys: 1 });
    const [primary, standby] = cluster.servers;
    await primary.admin`create table kept (n int)`;
    await cluster.replicated();
    await primary.stop("immediate");
    await cluster.promote(standby);
    await standby.admin`insert into kept values (1), (2)`;
    await cluster.rejoin(primary);
    assert.equal(primary.role, "standby");
    assert.equal(await primary.inRecovery(), true);
    await standby.admin`insert into kept values (3)`;
    await cluster.replicated();
    const [row] = await primary.admin<{ n: number }[]>`select count(*)::int as n from kept`;
    assert.equal(row.n, 3);
    assert.ok(await primary.loggedConnections("poolkit-admin") >= 2, "before and after rejoin");
  },
});

Deno.test({
  name: "synchronous replication waits for the standby on the primary only",
  ignore,
  fn: async () => {
    await using cluster = await startCluster({ standbys: 1, synchronous: true });
    const [primary, standby] = cluster.servers;
    const [onPrimary] = await primary.admin`show synchronous_standby_names`;
    assert.equal(onPrimary.synchronous_standby_names, "*");
    const [onStandby] = await standby.admin`show synchronous_standby_names`;
    assert.equal(onStandby.synchronous_standby_names, "");
    const [sync] = await primary.admin<{ sync_state: string }[]>`
      select sync_state from pg_stat_replication`;
    assert.equal(sync.sync_state, "sync");
    await primary.stop("immediate");
    await cluster.promote(standby);
    // A commit on the promoted standby returns although it has no standby of its own.
    await standby.admin`create table alone (n int)`;
    await standby.admin`insert into alone values (1)`;
  },
});

Deno.test({
  name: "a failed start stops what it started and deletes its folder",
  ignore,
  fn: async () => {
    const left = await leftInTmp(() =>
      assert.rejects(
        startCluster({ standbys: 1, settings: { no_such_setting_at_all: 1 } }),
        /no_such_setting_at_all/,
      )
    );
    assert.deepEqual(left, []);
  },
});

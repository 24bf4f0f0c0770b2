/**
 * Nothing acknowledged is lost: with synchronous replication on the server
 * (`synchronous_standby_names`), every insert a caller saw succeed before the primary crashed is
 * on the promoted standby. The pool cannot give this guarantee by itself; the server does, and
 * the pool must not break it (no insert reported as done that was not committed).
 *
 * @module
 */
import assert from "node:assert/strict";
import { createPostgresPool } from "../../adapters/postgres/mod.ts";
import { startCallers } from "../../tasks/setup/looping_callers.ts";
import { hasPostgresBinaries } from "../../tasks/setup/postgres.ts";
import { startCluster } from "../../tasks/setup/postgres_cluster.ts";
import { everyCallerHas, succeeded } from "./failover_calls.ts";
import { appName } from "./target.ts";

const CALLERS = 20;

Deno.test({
  name:
    "with synchronous replication every insert acknowledged before the crash is on the new primary",
  ignore: !(await hasPostgresBinaries()),
  fn: async () => {
    await using cluster = await startCluster({ standbys: 1, synchronous: true });
    const [primary, standby] = cluster.servers;
    await primary.admin`create table acked (caller int, seq int, primary key (caller, seq))`;
    await using pg = createPostgresPool({
      url: cluster.url,
      targetSessionAttrs: "read-write",
      connect_timeout: 2,
      connection: { application_name: appName("sync") },
      pool: { max: 10 },
    });
    const next = new Array<number>(CALLERS).fill(0);
    const insert = async (caller: number) => {
      const seq = next[caller]++;
      await pg.query("insert into acked values ($1, $2)", [caller, seq], { timeoutMs: 3_000 });
      return seq;
    };
    await using callers = startCallers(CALLERS, insert, { pauseMs: 0 });
    await callers.until(
      "50 inserts per caller",
      (calls) => succeeded(calls).length >= 50 * CALLERS,
    );
    const crashedAt = performance.now();
    await primary.stop("immediate");
    await cluster.promote(standby);
    await callers.until(
      "an insert by every caller on the new primary",
      (calls) => everyCallerHas(calls, CALLERS, (c) => c.startMs > crashedAt),
    );
    const calls = await callers.stop();

    const rows = await standby.admin<{ caller: number; seq: number }[]>`
      select caller, seq from acked`;
    const present = new Set(rows.map((r) => `${r.caller}/${r.seq}`));
    const acknowledged = succeeded(calls).map((c) => `${c.caller}/${c.value}`);
    const missing = acknowledged.filter((key) => !present.has(key));
    assert.ok(acknowledged.length > 50 * CALLERS);
    assert.deepEqual(missing, [], `${missing.length} of ${acknowledged.length} acknowledged lost`);
  },
});

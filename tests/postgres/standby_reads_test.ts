/**
 * Reads where they belong, against a real primary and streaming standby: a `prefer-standby` pool
 * reads from the standby, keeps reading while the primary crashes and the standby is promoted,
 * and reads from a standby again once the old primary has come back as one.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createPostgresPool } from "../../adapters/postgres/mod.ts";
import { startCallers } from "../../tasks/setup/looping_callers.ts";
import { hasPostgresBinaries } from "../../tasks/setup/postgres.ts";
import { startCluster } from "../../tasks/setup/postgres_cluster.ts";
import {
  everyCallerHas,
  failed,
  messageOf,
  portOf,
  succeeded,
  WHERE,
  type Where,
} from "./failover_calls.ts";
import { appName } from "./target.ts";

const ignore = !(await hasPostgresBinaries());
const READERS = 10;
const DEADLINE_MS = 3_000;

Deno.test({
  name: "a prefer-standby pool reads from the standby and keeps reading through the failover",
  ignore,
  fn: async () => {
    await using cluster = await startCluster({ standbys: 1 });
    const [primary, standby] = cluster.servers;
    const app = appName("prefer-standby");
    await using pg = createPostgresPool({
      url: cluster.url,
      targetSessionAttrs: "prefer-standby",
      connect_timeout: 2,
      connection: { application_name: app },
      pool: { max: 5 },
    });
    const read = () => pg.query<Where>(`select ${WHERE}`, [], { timeoutMs: DEADLINE_MS });
    await using readers = startCallers(READERS, read);
    await readers.until(
      "a read by every reader",
      (calls) => everyCallerHas(calls, READERS, () => true),
    );
    const crashedAt = performance.now();
    await primary.stop("immediate");
    await cluster.promote(standby);
    const promotedAt = performance.now();
    await readers.until(
      "reads by every reader after the promotion",
      (calls) => everyCallerHas(calls, READERS, (c) => c.startMs > promotedAt + 500),
    );
    const calls = await readers.stop();
    assert.deepEqual(failed(calls).map((c) => messageOf(c.error)), [], "no read failed");
    assert.deepEqual(new Set(calls.map(portOf)), new Set([standby.port]));
    assert.ok(calls.filter((c) => c.startMs > crashedAt && c.endMs < promotedAt).length > 0);
    assert.equal(pg.stats().hosts.find((h) => h.host === primary.host)?.connections, 0);
  },
});

Deno.test({
  name: "a prefer-standby pool reads from a standby again once one is back",
  ignore,
  fn: async () => {
    await using cluster = await startCluster({ standbys: 1 });
    const [primary, standby] = cluster.servers;
    const app = appName("standby-back");
    await using pg = createPostgresPool({
      url: cluster.url,
      targetSessionAttrs: "prefer-standby",
      connect_timeout: 2,
      connection: { application_name: app },
      pool: { max: 5, maxLifetimeMs: 500 }, // connections are replaced, each one placed anew
    });
    const read = () => pg.query<Where>(`select ${WHERE}`, [], { timeoutMs: DEADLINE_MS });
    await using readers = startCallers(READERS, read);
    await primary.stop("immediate");
    await cluster.promote(standby);
    // No standby now: reads go to the only server, the new primary.
    const promotedAt = performance.now();
    await readers.until(
      "reads on the new primary",
      (calls) =>
        succeeded(calls).some((c) => c.startMs > promotedAt + 1_000 && portOf(c) === standby.port),
    );
    await cluster.rejoin(primary);
    const rejoinedAt = performance.now();
    await readers.until(
      "reads on the rejoined standby",
      (calls) => succeeded(calls).some((c) => c.startMs > rejoinedAt && portOf(c) === primary.port),
    );
    const calls = await readers.stop();
    assert.deepEqual(
      failed(calls.filter((c) => c.startMs > promotedAt)).map((c) => messageOf(c.error)),
      [],
    );
    assert.ok((await primary.activity(app)).length > 0, "the pool has connections on the standby");
    assert.equal(pg.stats().hosts.find((h) => h.host === primary.host)?.role, "standby");
  },
});

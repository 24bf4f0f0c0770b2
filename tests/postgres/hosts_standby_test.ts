/**
 * `targetSessionAttrs` against a real primary and its streaming standby: each new connection is
 * checked for its role before it is lent, whatever the host order; and a standby promoted under
 * a pool that wants standbys has its connections retired as the server reports it
 * (`in_hot_standby`, PostgreSQL 14+).
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  createPostgresPool,
  noPool,
  type PostgresPool,
  type TargetSessionAttrs,
} from "../../adapters/postgres/mod.ts";
import { type Cluster, startCluster } from "../../tasks/setup/postgres_cluster.ts";
import { hasPostgresBinaries } from "../../tasks/setup/postgres.ts";
import { eventually, warm } from "./target.ts";

const ignore = !(await hasPostgresBinaries());

/** The server ports `n` calls ran on, each on a new connection. */
async function serverPorts(pg: PostgresPool, n: number): Promise<Set<number>> {
  const ports = new Set<number>();
  for (let i = 0; i < n; i++) {
    const [{ port }] = await pg.query<{ port: number }[]>`select inet_server_port() as port`;
    ports.add(port);
  }
  return ports;
}

Deno.test({
  name: "postgres targetSessionAttrs against a primary and a standby",
  ignore,
  fn: async (t) => {
    await using cluster: Cluster = await startCluster({ standbys: 1 });
    const [primary, standby] = cluster.servers;
    const pool = (attrs: TargetSessionAttrs, hosts: string[]) =>
      createPostgresPool({ url: primary.url, hosts, targetSessionAttrs: attrs, pool: noPool() });

    for (const attrs of ["primary", "read-write"] as const) {
      await t.step(`${attrs} skips the standby listed first`, async () => {
        await using pg = pool(attrs, [standby.host, primary.host]);
        assert.deepEqual(await serverPorts(pg, 3), new Set([primary.port]));
        assert.deepEqual(pg.stats().hosts.map((h) => h.role), ["standby", "primary"]);
      });
    }

    for (const attrs of ["standby", "read-only", "prefer-standby"] as const) {
      await t.step(`${attrs} picks the standby listed second`, async () => {
        await using pg = pool(attrs, [primary.host, standby.host]);
        assert.deepEqual(await serverPorts(pg, 3), new Set([standby.port]));
      });
    }

    await t.step("prefer-standby uses the primary while no standby answers", async () => {
      await standby.stop("fast");
      try {
        await using pg = pool("prefer-standby", [standby.host, primary.host]);
        assert.deepEqual(await serverPorts(pg, 3), new Set([primary.port]));
      } finally {
        await standby.start();
      }
    });

    await t.step(
      "prefer-standby: when the standby is back, the connections on the primary are retired",
      async () => {
        await standby.stop("fast");
        await using pg = createPostgresPool({
          url: primary.url,
          hosts: [standby.host, primary.host],
          targetSessionAttrs: "prefer-standby",
          pool: { max: 2 },
        });
        const events = pg.events();
        try {
          await warm(pg, 2);
          assert.equal(pg.stats().hosts[1].connections, 2);
        } finally {
          await standby.start();
        }
        for await (const event of events) if (event.type === "host-up") break;
        await eventually(
          "the idle connections on the primary are retired",
          () => pg.stats().hosts[1].connections === 0,
        );
        assert.deepEqual(await serverPorts(pg, 3), new Set([standby.port]));
      },
    );

    await t.step(
      "a standby promoted under a standby pool: the server reports it, its connections are retired",
      async () => {
        await using pg = createPostgresPool({
          url: primary.url,
          hosts: [standby.host],
          targetSessionAttrs: "standby",
          pool: { max: 2, acquireTimeoutMs: 1_000 },
        });
        const events = pg.events();
        await warm(pg, 2);
        await primary.stop("immediate");
        await cluster.promote(standby);
        await pg.query`select 1`; // its answer carries in_hot_standby = off
        for await (const event of events) {
          if (event.type !== "role-changed") continue;
          assert.deepEqual(event, {
            type: "role-changed",
            host: standby.host,
            from: "standby",
            to: "primary",
          });
          break;
        }
        assert.equal(pg.stats().hosts[0].role, "primary");
        const error = await pg.query`select 1`.then(() => undefined, (e) => e);
        let text = "";
        for (let e: unknown = error; e instanceof Error; e = e.cause) text += e.message + " | ";
        assert.match(text, new RegExp(`no PostgreSQL host is standby.*${standby.host}: primary`));
      },
    );
  },
});

/**
 * What the shared adapter suite runs against: PostgreSQL directly, or PgBouncer in front of it.
 * A target knows how to connect (URL and driver options) and how to count the client
 * connections an application name holds, which is the only part that differs.
 *
 * @module
 */
import type { Database } from "../../tasks/setup/postgres.ts";
import type { PgBouncer } from "../../tasks/setup/pgbouncer.ts";
import type { PostgresPool, PostgresPoolOptions } from "../../adapters/postgres/mod.ts";

/** A place to run the adapter suite. */
export interface Target {
  /** For test names: "direct" or "PgBouncer (transaction mode)". */
  name: string;
  /** The database behind it (admin SQL, table names). */
  db: Database;
  /** URL to connect through (password included). */
  url: string;
  /** The same with another password. */
  urlWith(change: { password: string }): string;
  /** Driver options this target needs (PgBouncer transaction mode: no prepared statements). */
  driver: Omit<PostgresPoolOptions, "url" | "pool">;
  /** Client connections open under this application name right now. */
  connections(applicationName: string): Promise<number>;
}

/** PostgreSQL itself: connections counted in `pg_stat_activity`. */
export function direct(db: Database): Target {
  return {
    name: "direct",
    db,
    url: db.url,
    urlWith: (change) => db.urlWith(change),
    driver: {},
    async connections(app) {
      const [row] = await db.admin<{ n: number }[]>`
        select count(*)::int as n from pg_stat_activity where application_name = ${app}`;
      return row.n;
    },
  };
}

/** PgBouncer in transaction mode: client connections counted with `SHOW CLIENTS`. */
export function throughPgBouncer(db: Database, bouncer: PgBouncer): Target {
  return {
    name: "PgBouncer (transaction mode)",
    db,
    url: bouncer.url,
    urlWith: (change) => bouncer.urlWith(change),
    driver: { prepare: false },
    async connections(app) {
      const clients = await bouncer.show("clients");
      return clients.filter((c) => c.application_name === app).length;
    },
  };
}

/** A unique application name, so each test counts only its own connections. */
export function appName(label: string): string {
  return `t_${label}_${crypto.randomUUID().slice(0, 8)}`;
}

/** Polls `check` until it returns true; throws with `what` if it never does. */
export async function eventually(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`never happened within ${timeoutMs} ms: ${what}`);
}

/** Opens `n` connections at once (each caller holds its own until all have one), so that they exist. */
export async function warm(pg: PostgresPool, n: number): Promise<void> {
  let arrived = 0;
  const { promise: all, resolve } = Promise.withResolvers<void>();
  await Promise.all(Array.from({ length: n }, () =>
    pg.use(async (sql) => {
      await sql`select 1`;
      if (++arrived === n) resolve();
      await all;
    })));
}

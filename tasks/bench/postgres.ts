/**
 * `deno task bench postgres`: PostgreSQL through this package's adapter
 * against what users would pick instead: postgres.js's own built-in pool,
 * node-postgres `pg.Pool`, and no pool at all (a connection per query).
 * `SELECT 1` and an insert into `pedido`, 1, 10 and 50 callers, pools of 10.
 *
 * @module
 */

import postgres from "postgres";
import { createPostgresPool, type PostgresClient } from "../../adapters/postgres/mod.ts";
import type { Benchmark, Contender } from "./benchmark.ts";
import type { Target } from "./targets.ts";
import { exitOnUsageError, parseArgs } from "./cli.ts";
import { acquirePgContext, type PgContext } from "./pg_context.ts";
import {
  openPgPool,
  openPostgresJs,
  PG_MAX,
  type PgScenario,
  pgScenarios,
  postgresJsQuery,
} from "./pg_drivers.ts";
import { runSuite } from "./suite.ts";
import { runCallers } from "./workers.ts";

export type * from "./benchmark.ts";
export type * from "./targets.ts";
export type * from "./stats.ts";

let ctx: PgContext | undefined;
const need = () => {
  if (!ctx) throw new Error("the database is not prepared");
  return ctx;
};

const ours: Contender = {
  name: "poolkit",
  description:
    "this package's `createPostgresPool({ pool: { max: 10 } })` with its default driver options; " +
    "each op is `pg.use((sql) => sql`...`)` (borrow a connection, run, give it back).",
  ours: true,
  async open(s) {
    const scenario = s as PgScenario;
    const c = need();
    const pg = createPostgresPool({ url: c.url, pool: { max: PG_MAX } });
    const query = (sql: PostgresClient) => postgresJsQuery(sql, c, scenario.query);
    const op = () => pg.use(query);
    await Promise.all(Array.from({ length: PG_MAX * 2 }, op));
    return {
      trial: (ms) => runCallers(scenario.concurrency, ms, op, true),
      close: () => pg.close({ timeoutMs: 5_000 }),
    };
  },
};

const postgresJsPool: Contender = {
  name: "postgres.js pool",
  description: "postgres.js's own built-in pool, `postgres(url, { max: 10 })`, default options.",
  ours: false,
  open: (s) => openPostgresJs(need(), s as PgScenario),
};

const pgPool: Contender = {
  name: "pg.Pool",
  description: "node-postgres `new pg.Pool({ max: 10 })`, `pool.query(text, values)`.",
  ours: false,
  open: (s) => openPgPool(need(), s as PgScenario),
};

const noPool: Contender = {
  name: "no pool",
  description:
    "a new postgres.js connection per query (`postgres(url, { max: 1 })`, query, `end()`): " +
    "what code without a pool does.",
  ours: false,
  open(s) {
    const scenario = s as PgScenario;
    const c = need();
    const op = async () => {
      const sql = postgres(c.url, { max: 1, onnotice: () => {} });
      try {
        await postgresJsQuery(sql as PostgresClient, c, scenario.query);
      } finally {
        await sql.end({ timeout: 5 });
      }
    };
    return Promise.resolve({
      trial: (ms) => runCallers(scenario.concurrency, ms, op, true),
      close: () => Promise.resolve(),
    });
  },
};

const scenarios = pgScenarios([1, 10, 50]);

function targetsAt50(query: "select1" | "insert"): Target[] {
  const scenario = `${query}-c50`;
  const what = query === "select1" ? "SELECT 1" : "INSERT pedido";
  const base = { scenario, contender: "poolkit" };
  return [
    {
      ...base,
      label: `${what}, 50 callers: queries/s ≥ 1.0× postgres.js's own pool`,
      metric: "opsPerSec",
      baseline: "postgres.js pool",
      direction: "atLeast",
      limit: 1.0,
    },
    {
      ...base,
      label: `${what}, 50 callers: queries/s ≥ 0.9× pg.Pool`,
      metric: "opsPerSec",
      baseline: "pg.Pool",
      direction: "atLeast",
      limit: 0.9,
    },
    {
      ...base,
      label: `${what}, 50 callers: p99 no worse than pg.Pool's`,
      metric: "p99",
      baseline: "pg.Pool",
      direction: "atMost",
      limit: 1.0,
    },
    {
      ...base,
      label: `${what}, 50 callers: queries/s ≥ 50× no pool`,
      metric: "opsPerSec",
      baseline: "no pool",
      direction: "atLeast",
      limit: 50,
    },
  ];
}

/** The PostgreSQL benchmark (issue 6 item 2). */
export const postgresBenchmark: Benchmark = {
  id: "postgres",
  title: "PostgreSQL: SELECT 1 and INSERT, pools of 10",
  measures:
    "Measures queries/s and p50/p99 latency of SELECT 1 and an insert into pedido, 1/10/50 callers, pools of max 10.",
  primary: "opsPerSec",
  recordsLatency: true,
  monitorsEventLoop: false,
  lifetime: "scenario",
  scenarios,
  contenders: [ours, postgresJsPool, pgPool, noPool],
  targets: [...targetsAt50("select1"), ...targetsAt50("insert")],
  notes: [],
  async prepare() {
    const { ctx: c, release } = await acquirePgContext((l) => console.error(`  ${l}`));
    ctx = c;
    postgresBenchmark.notes!.push(`PostgreSQL ${c.serverVersion} at ${c.display}.`);
    return async () => {
      ctx = undefined;
      await release();
    };
  },
};

if (import.meta.main) {
  await Promise.resolve().then(() => parseArgs(Deno.args, ["postgres"]))
    .then((args) => runSuite([postgresBenchmark], args), exitOnUsageError);
}

/**
 * `deno task bench postgres`: PostgreSQL through this package's adapter
 * against what users would pick instead: postgres.js's own built-in pool,
 * node-postgres `pg.Pool`, and no pool at all (a connection per query).
 * `SELECT 1` and an insert into `pedido`, 1, 10 and 50 callers, pools of 10;
 * at 50 callers also a transaction of one INSERT and one SELECT (each
 * contender's transaction API), the core `Pool` over bare postgres.js (the
 * adapter's own cost), and a borrower that leaves session state behind
 * (`SET`, then `SELECT 1`: what the session cleaning costs).
 *
 * @module
 */

import postgres from "postgres";
import type { PostgresClient } from "../../adapters/postgres/mod.ts";
import type { Benchmark, Contender } from "./benchmark.ts";
import { exitOnUsageError, parseArgs } from "./cli.ts";
import { acquirePgContext, type PgContext } from "./pg_context.ts";
import {
  openPgPool,
  openPostgresJs,
  type PgScenario,
  pgScenarios,
  postgresJsQuery,
} from "./pg_drivers.ts";
import {
  BARE_POOL,
  barePoolContender,
  POOLKIT,
  POOLKIT_QUERY,
  poolkitContender,
  VARIANTS_ENV,
  variantsFromEnv,
} from "./pg_poolkit.ts";
import { postgresTargets } from "./pg_targets.ts";
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

const ours = poolkitContender(need);
const oursQuery = poolkitContender(need, POOLKIT_QUERY, {}, "query");
const bare = barePoolContender(need);

const postgresJsPool: Contender = {
  name: "postgres.js pool",
  description: "postgres.js's own built-in pool, `postgres(url, { max: 10 })`, default options; " +
    "transactions with `sql.begin()`.",
  ours: false,
  open: (s) => openPostgresJs(need(), s as PgScenario),
};

const pgPool: Contender = {
  name: "pg.Pool",
  description: "node-postgres `new pg.Pool({ max: 10 })`, `pool.query(text, values)`; " +
    "transactions with `pool.connect()`, BEGIN, COMMIT, `release()`.",
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

/** The session-state scenario: only pools that can run two statements on one connection. */
const SESSION_SCENARIO: PgScenario = {
  id: "session-c50",
  label: "SET + SELECT 1, 50 callers",
  concurrency: 50,
  query: "session",
};
/** A transaction of one INSERT and one SELECT: each contender's own transaction API. */
const TRANSACTION_SCENARIO: PgScenario = {
  id: "transaction-c50",
  label: "transaction of INSERT + SELECT, 50 callers",
  concurrency: 50,
  query: "transaction",
};
const scenarios = [...pgScenarios([1, 10, 50]), TRANSACTION_SCENARIO, SESSION_SCENARIO];
/** The adapter without the session cleaning, so the default's cost shows beside it. */
const resetPolicies = [poolkitContender(need, `${POOLKIT} reset never`, { reset: "never" })];
const variants = [...resetPolicies, ...variantsFromEnv(need)];
const peers = [postgresJsPool, pgPool, noPool];
const contenders = [ours, oursQuery, ...variants, bare, ...peers];

/** Who runs a scenario: the bare-Pool layer only at 50 callers, the peers not on session state. */
function contendersFor(s: PgScenario): Contender[] {
  if (s.query === "session") return [ours, ...variants, bare];
  if (s.query === "transaction") return [ours, ...variants, postgresJsPool, pgPool];
  if (s.concurrency < 50) return [ours, oursQuery, ...variants, ...peers];
  return contenders;
}

/** The PostgreSQL benchmark. */
export const postgresBenchmark: Benchmark = {
  id: "postgres",
  title: "PostgreSQL: SELECT 1, INSERT and a transaction, pools of 10",
  measures:
    "Measures queries/s (transactions/s) and p50/p99 latency of SELECT 1 and an insert into pedido, 1/10/50 callers, and of a transaction of one INSERT and one SELECT, 50 callers, pools of max 10.",
  primary: "opsPerSec",
  recordsLatency: true,
  monitorsEventLoop: false,
  lifetime: "scenario",
  scenarios,
  contenders,
  contendersFor: (s) => contendersFor(s as PgScenario),
  targets: postgresTargets(),
  ratioBaselines: ["postgres.js pool", "pg.Pool", "no pool", BARE_POOL],
  notes: [],
  async prepare() {
    const { ctx: c, release } = await acquirePgContext((l) => console.error(`  ${l}`));
    ctx = c;
    postgresBenchmark.notes!.push(
      `PostgreSQL ${c.serverVersion} at ${c.display}.`,
      `"${POOLKIT}" runs with the adapter's defaults; other settings of the adapter are measured ` +
        `as extra contenders: "${POOLKIT} reset never" (no session cleaning) always, others ` +
        `named in ${VARIANTS_ENV} (JSON, name → options).`,
    );
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

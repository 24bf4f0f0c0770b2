/**
 * The two PostgreSQL benchmarks (their contenders are in `pg_contenders.ts`):
 *
 * - `postgres`: this package's adapter against what users would pick instead: postgres.js's own
 *   built-in pool, node-postgres `pg.Pool`, and no pool at all (a connection per query).
 *   `SELECT 1` and an insert into `pedido`, 1, 10 and 50 callers, pools of 10; at 50 callers
 *   also a transaction of one INSERT and one SELECT (each contender's transaction API), the core
 *   `Pool` over bare postgres.js (the adapter's own cost), and a borrower that leaves session
 *   state behind (`SET`, then `SELECT 1`: what the session cleaning costs).
 * - `postgres-driver`: where postgres.js loses time under Deno. The same load for postgres.js
 *   with one option changed at a time, next to `pg.Pool`: the evidence the adapter's driver
 *   defaults are chosen on.
 *
 * @module
 */

import type { Benchmark, Contender } from "./benchmark.ts";
import {
  BARE_POOL,
  barePool,
  noPool,
  pgPool,
  type PgScenario,
  POOLKIT,
  poolkit,
  postgresJs,
  prepareDatabase,
  VARIANTS_ENV,
  variantsFromEnv,
} from "./pg_contenders.ts";
import { postgresTargets } from "./targets.ts";

/** `SELECT 1` and `INSERT pedido` at each number of callers. */
function queryScenarios(concurrencies: readonly number[]): PgScenario[] {
  return (["select1", "insert"] as const).flatMap((query) =>
    concurrencies.map((c) => ({
      id: `${query}-c${c}`,
      label: `${query === "select1" ? "SELECT 1" : "INSERT pedido"}, ${c} caller${
        c === 1 ? "" : "s"
      }`,
      concurrency: c,
      query,
    }))
  );
}

const ours = poolkit();
const oursQuery = poolkit("poolkit query()", {}, "query");
/** The adapter without the session cleaning, so the default's cost shows beside it. */
const variants = [poolkit(`${POOLKIT} reset never`, { reset: "never" }), ...variantsFromEnv()];
const postgresJsPool = postgresJs(
  "postgres.js pool",
  "postgres.js's own built-in pool, `postgres(url, { max: 10 })`, default options; " +
    "transactions with `sql.begin()`.",
);
const pgPoolOwn = pgPool(
  "node-postgres `new pg.Pool({ max: 10 })`, `pool.query(text, values)`; " +
    "transactions with `pool.connect()`, BEGIN, COMMIT, `release()`.",
);
const peers = [postgresJsPool, pgPoolOwn, noPool];
const contenders = [ours, oursQuery, ...variants, barePool, ...peers];

/** The PostgreSQL benchmark. */
export const postgresBenchmark: Benchmark = {
  id: "postgres",
  title: "PostgreSQL: SELECT 1, INSERT and a transaction, pools of 10",
  measures:
    "Measures queries/s (transactions/s) and p50/p99 latency of SELECT 1 and an insert into pedido, 1/10/50 callers, and of a transaction of one INSERT and one SELECT, 50 callers, pools of max 10.",
  primary: "opsPerSec",
  monitorsEventLoop: false,
  lifetime: "scenario",
  scenarios: [
    ...queryScenarios([1, 10, 50]),
    {
      id: "transaction-c50",
      label: "transaction of INSERT + SELECT, 50 callers",
      concurrency: 50,
      query: "transaction",
    },
    { id: "session-c50", label: "SET + SELECT 1, 50 callers", concurrency: 50, query: "session" },
  ] satisfies PgScenario[],
  contenders,
  // The bare-Pool layer only at 50 callers; the peers not on session state.
  contendersFor: (s) => {
    const { query, concurrency } = s as PgScenario;
    if (query === "session") return [ours, ...variants, barePool];
    if (query === "transaction") return [ours, ...variants, postgresJsPool, pgPoolOwn];
    if (concurrency < 50) return [ours, oursQuery, ...variants, ...peers];
    return contenders;
  },
  targets: postgresTargets(),
  ratioBaselines: ["postgres.js pool", "pg.Pool", "no pool", BARE_POOL],
  notes: [],
  async prepare() {
    const cleanup = await prepareDatabase(postgresBenchmark);
    postgresBenchmark.notes!.push(
      `"${POOLKIT}" runs with the adapter's defaults; other settings of the adapter are measured ` +
        `as extra contenders: "${POOLKIT} reset never" (no session cleaning) always, others ` +
        `named in ${VARIANTS_ENV} (JSON, name → options).`,
    );
    return cleanup;
  },
};

const pgPoolSimple = pgPool(
  "node-postgres `pg.Pool`: `pool.query(text, values)` (simple protocol without values).",
);
const byDefault = postgresJs(
  "postgres.js default",
  "postgres.js defaults (prepare: true, fetch_types: true).",
);
const noFetchTypes = postgresJs(
  "postgres.js no fetch_types",
  "`fetch_types: false`: no array-type query after connecting.",
  { options: { fetch_types: false } },
);
const simple = postgresJs(
  "postgres.js simple",
  "`sql`select 1`.simple()`: the simple query protocol, one message, like pg (SELECT 1 only).",
  { simple: true },
);
const driverContenders: Contender[] = [
  pgPoolSimple,
  byDefault,
  noFetchTypes,
  postgresJs("postgres.js prepare:false", "`prepare: false`: unnamed statements, like pg.", {
    options: { prepare: false },
  }),
  postgresJs("postgres.js max_pipeline 1", "`max_pipeline: 1`: no pipelining on a connection.", {
    options: { max_pipeline: 1 },
  }),
  simple,
];

/** postgres.js option variants vs pg.Pool (evidence for the adapter's defaults). */
export const postgresDriverBenchmark: Benchmark = {
  id: "postgres-driver",
  title: "postgres.js under Deno: one option at a time, vs pg.Pool",
  measures:
    "Measures queries/s and latency of postgres.js with one option changed at a time, next to pg.Pool, pools of 10.",
  primary: "opsPerSec",
  monitorsEventLoop: false,
  lifetime: "scenario",
  scenarios: [
    ...queryScenarios([1, 50]),
    {
      id: "connect-c1",
      label: "new connection + SELECT 1 + close, 1 caller",
      concurrency: 1,
      query: "connect",
    },
  ] satisfies PgScenario[],
  contenders: driverContenders,
  contendersFor: (s) => {
    const query = (s as PgScenario).query;
    if (query === "select1") return driverContenders;
    if (query === "insert") return driverContenders.filter((c) => c !== simple);
    return [pgPoolSimple, byDefault, noFetchTypes];
  },
  targets: [],
  ratioBaselines: ["pg.Pool", "postgres.js default"],
  notes: [],
  prepare: () => prepareDatabase(postgresDriverBenchmark),
};

/**
 * `deno task bench postgres-driver`: where postgres.js loses time under Deno.
 * The same load as the PostgreSQL benchmark, for postgres.js with one option
 * changed at a time, next to `pg.Pool`. The evidence the adapter's driver
 * defaults are chosen on.
 *
 * @module
 */

import type { Benchmark, Contender } from "./benchmark.ts";
import { exitOnUsageError, parseArgs } from "./cli.ts";
import { acquirePgContext, type PgContext } from "./pg_context.ts";
import {
  openPgPool,
  openPostgresJs,
  type PgScenario,
  pgScenarios,
  type PostgresJsStyle,
} from "./pg_drivers.ts";
import { runSuite } from "./suite.ts";

export type * from "./benchmark.ts";
export type * from "./targets.ts";
export type * from "./stats.ts";

let ctx: PgContext | undefined;
const need = () => {
  if (!ctx) throw new Error("the database is not prepared");
  return ctx;
};

function variant(name: string, description: string, style: PostgresJsStyle): Contender {
  return {
    name,
    description,
    ours: false,
    open: (s) => openPostgresJs(need(), s as PgScenario, style),
  };
}

const pgPool: Contender = {
  name: "pg.Pool",
  description:
    "node-postgres `pg.Pool`: `pool.query(text, values)` (simple protocol without values).",
  ours: false,
  open: (s) => openPgPool(need(), s as PgScenario),
};

const simple = variant(
  "postgres.js simple",
  "`sql`select 1`.simple()`: the simple query protocol, one message, like pg (SELECT 1 only).",
  { simple: true },
);

const byDefault = variant(
  "postgres.js default",
  "postgres.js defaults (prepare: true, fetch_types: true).",
  {},
);
const noFetchTypes = variant(
  "postgres.js no fetch_types",
  "`fetch_types: false`: no array-type query after connecting.",
  { options: { fetch_types: false } },
);

const contenders: Contender[] = [
  pgPool,
  byDefault,
  noFetchTypes,
  variant("postgres.js prepare:false", "`prepare: false`: unnamed statements, like pg.", {
    options: { prepare: false },
  }),
  variant("postgres.js max_pipeline 1", "`max_pipeline: 1`: no pipelining on a connection.", {
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
  recordsLatency: true,
  monitorsEventLoop: false,
  lifetime: "scenario",
  scenarios: [
    ...pgScenarios([1, 50]),
    {
      id: "connect-c1",
      label: "new connection + SELECT 1 + close, 1 caller",
      concurrency: 1,
      query: "connect",
    } satisfies PgScenario,
  ],
  contenders,
  contendersFor: (s) => {
    const query = (s as PgScenario).query;
    if (query === "select1") return contenders;
    if (query === "insert") return contenders.filter((c) => c !== simple);
    return contenders.filter((c) => [pgPool, byDefault, noFetchTypes].includes(c));
  },
  targets: [],
  ratioBaselines: ["pg.Pool", "postgres.js default"],
  notes: [],
  async prepare() {
    const { ctx: c, release } = await acquirePgContext((l) => console.error(`  ${l}`));
    ctx = c;
    postgresDriverBenchmark.notes!.push(`PostgreSQL ${c.serverVersion} at ${c.display}.`);
    return async () => {
      ctx = undefined;
      await release();
    };
  },
};

if (import.meta.main) {
  await Promise.resolve().then(() => parseArgs(Deno.args, ["postgres-driver"]))
    .then((args) => runSuite([postgresDriverBenchmark], args), exitOnUsageError);
}

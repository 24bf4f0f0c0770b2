/**
 * The PostgreSQL benchmark's targets, the adapter at its defaults: the one-shot `pg.query()`
 * ahead of both drivers' own pools at 50 callers (`pg.use()`, one statement per lease, is
 * reported beside it), a `transaction()` within 0.8× of the better driver's, and a pool at all
 * worth 50× no pool.
 *
 * @module
 */

import type { Target } from "./targets.ts";

const POSTGRES_JS = "postgres.js pool";
const PG_POOL = "pg.Pool";
/** The adapter's one-shot `query()` is held to the targets; `use()` ("poolkit") is reported. */
const SUBJECTS = ["poolkit query()"];

const what = (query: "select1" | "insert") => (query === "select1" ? "SELECT 1" : "INSERT pedido");

function at50Callers(query: "select1" | "insert", subject: string): Target[] {
  const base = { scenario: `${query}-c50`, contender: subject } as const;
  return [
    {
      ...base,
      label: `${subject}, ${what(query)}, 50 callers: queries/s ≥ 1.0× postgres.js's own pool`,
      metric: "opsPerSec",
      baseline: POSTGRES_JS,
      direction: "atLeast",
      limit: 1.0,
    },
    {
      ...base,
      label: `${subject}, ${what(query)}, 50 callers: queries/s ≥ 1.0× pg.Pool`,
      metric: "opsPerSec",
      baseline: PG_POOL,
      direction: "atLeast",
      limit: 1.0,
    },
    {
      ...base,
      label: `${subject}, ${what(query)}, 50 callers: p99 no worse than pg.Pool's`,
      metric: "p99",
      baseline: PG_POOL,
      direction: "atMost",
      limit: 1.0,
    },
    {
      ...base,
      label: `${subject}, ${what(query)}, 50 callers: queries/s ≥ 50× no pool`,
      metric: "opsPerSec",
      baseline: "no pool",
      direction: "atLeast",
      limit: 50,
    },
  ];
}

function betterPeer(query: "select1" | "insert", callers: number, subject: string): Target {
  return {
    label:
      `${subject}, ${what(query)}, ${callers} caller${
        callers === 1 ? "" : "s"
      }: queries/s ≥ 0.95× ` +
      "the better of postgres.js's pool and pg.Pool",
    scenario: `${query}-c${callers}`,
    contender: subject,
    metric: "opsPerSec",
    baselineBestOf: [POSTGRES_JS, PG_POOL],
    direction: "atLeast",
    limit: 0.95,
  };
}

/** `transaction()` (INSERT + SELECT, clean-session default) against the drivers' own. */
const transactionTarget: Target = {
  label: "poolkit transaction(), INSERT + SELECT, 50 callers: transactions/s ≥ 0.8× the " +
    "better of postgres.js's sql.begin() and pg.Pool's connect/BEGIN/COMMIT/release",
  scenario: "transaction-c50",
  contender: "poolkit",
  metric: "opsPerSec",
  baselineBestOf: [POSTGRES_JS, PG_POOL],
  direction: "atLeast",
  limit: 0.8,
};

/** Every target of the PostgreSQL benchmark. */
export function postgresTargets(): Target[] {
  const queries = ["select1", "insert"] as const;
  return SUBJECTS.flatMap((subject) => [
    ...queries.flatMap((q) => at50Callers(q, subject)),
    ...queries.flatMap((q) => [1, 10].map((c) => betterPeer(q, c, subject))),
  ]).concat(transactionTarget);
}

/**
 * The PostgreSQL benchmark's targets: issue 14 (ahead of both drivers' own
 * pools, the adapter at its defaults) and issue 6's "a pool at all" target.
 *
 * @module
 */

import type { Target } from "./targets.ts";

const POSTGRES_JS = "postgres.js pool";
const PG_POOL = "pg.Pool";
/** The adapter through `use()` and through the one-shot `query()`: both are held to the targets. */
const SUBJECTS = ["poolkit", "poolkit query()"];

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

/** Every target of the PostgreSQL benchmark. */
export function postgresTargets(): Target[] {
  const queries = ["select1", "insert"] as const;
  return SUBJECTS.flatMap((subject) => [
    ...queries.flatMap((q) => at50Callers(q, subject)),
    ...queries.flatMap((q) => [1, 10].map((c) => betterPeer(q, c, subject))),
  ]);
}

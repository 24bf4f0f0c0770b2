/**
 * Evidence for issue 14, lever 3: what the pipelined session reset (`reset: "always"`) costs
 * per round trip, and which part of it. One postgres.js connection (`max: 1`) to a throwaway
 * cluster, holding `--held` of postgres.js's own prepared statements as an application would (the
 * check lists them all; its cost turned out not to grow with them); each variant is sent back to
 * back (awaited) N times, rounds alternating, the last two printed.
 *
 *   deno run -A tasks/bench/pg_reset_cost.ts [--held 20] [N]
 *
 * @module
 */
import postgres from "postgres";
import { PIPELINED_RESET_SQL } from "../../adapters/postgres/session_reset.ts";
import { startDatabase } from "../setup/postgres.ts";
import { toolArgs, wholeNumber } from "./tool_args.ts";

const USAGE = "usage: deno run -A tasks/bench/pg_reset_cost.ts [--held 20] [N]\n" +
  "  N        sends per variant (default 1500)\n" +
  "  --held   postgres.js prepared statements on the connection (default 20)";
const { values, positionals } = toolArgs({
  args: Deno.args,
  allowPositionals: true,
  options: { held: { type: "string", default: "20" } },
}, USAGE);
const n = wholeNumber(positionals[0] ?? 1500, "N", USAGE);
const held = wholeNumber(values.held, "--held", USAGE);
await using db = await startDatabase();
const sql = postgres(db.url, { max: 1, onnotice: () => {} });
try {
  for (let i = 0; i < held; i++) await sql`select ${i}::int as n, ${"x" + i}::text as s`;
  const parts = PIPELINED_RESET_SQL.split("; ");
  const check = parts[parts.length - 2]; // advisory unlock + the SQL-level PREPARE check
  // The check without the view: whether planning the view is what costs (it is not).
  const viaFunction = PIPELINED_RESET_SQL.replace(
    "pg_catalog.pg_prepared_statements where from_sql",
    "pg_catalog.pg_prepared_statement() p where p.from_sql",
  );
  if (viaFunction === PIPELINED_RESET_SQL) throw new Error("the reset's check changed: update me");
  const variants: Record<string, () => Promise<unknown>> = {
    "SELECT 1 (a round trip)": () => sql`select 1`,
    "the pipelined reset": () => sql.unsafe(PIPELINED_RESET_SQL),
    "the same, calling the function under the view": () => sql.unsafe(viaFunction),
    "the reset without the prepared-statements check": () =>
      sql.unsafe([...parts.slice(0, -2), "commit"].join("; ")),
    "the check alone, prepared": () => sql.unsafe(check, [], { prepare: true }),
  };
  for (let round = 0; round < 3; round++) {
    for (const [name, send] of Object.entries(variants)) {
      const start = performance.now();
      for (let i = 0; i < n; i++) await send();
      const us = ((performance.now() - start) / n) * 1000;
      if (round > 0) console.log(`round ${round}: ${name}: ${us.toFixed(1)} µs`);
    }
  }
} finally {
  await sql.end();
}

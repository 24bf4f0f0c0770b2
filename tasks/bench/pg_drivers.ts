/**
 * The two PostgreSQL drivers as benchmark contenders, each with its own
 * built-in pool: postgres.js (`npm:postgres`, with options) and node-postgres
 * (`npm:pg`'s `pg.Pool`). The same two queries for both: `SELECT 1` and an
 * insert into `pedido`.
 *
 * @module
 */

import pg from "pg";
import postgres from "postgres";
import type { ContenderInstance, Scenario } from "./benchmark.ts";
import { ORDER_ROW, type PgContext } from "./pg_context.ts";
import { runCallers } from "./workers.ts";

/**
 * Which query a scenario runs; `"connect"`: open a new connection, `SELECT 1`, close it
 * (the cost a pool saves, and where drivers differ most); `"session"`: `SET statement_timeout`
 * then `SELECT 1` on the same connection, a borrower that leaves session state behind (what a
 * session-reset policy has to clean up); `"transaction"`: a transaction of one INSERT and one
 * SELECT of the inserted row, each contender with its own transaction API.
 */
export type PgQuery = "select1" | "insert" | "connect" | "session" | "transaction";

/** The transaction scenario's body on a postgres.js client inside a transaction. */
export async function transactionBody(
  sql: postgres.Sql<Record<string, unknown>>,
  ctx: PgContext,
): Promise<unknown> {
  const { cliente, descripcion, fecha_pedido } = ORDER_ROW;
  const [{ id }] = await sql<{ id: number }[]>`insert into ${sql(ctx.pedido)}
    (cliente, descripcion, fecha_pedido) values (${cliente}, ${descripcion}, ${fecha_pedido})
    returning id`;
  return await sql`select cliente from ${sql(ctx.pedido)} where id = ${id}`;
}

/** A PostgreSQL scenario: a query and a number of callers. */
export interface PgScenario extends Scenario {
  /** The query every operation runs. */
  query: PgQuery;
}

/** Pool size every pooled contender gets. */
export const PG_MAX = 10;

/** How a postgres.js contender issues its queries. */
export interface PostgresJsStyle {
  /** postgres.js options (merged over max, onnotice); `max_pipeline` is real but untyped. */
  options?: postgres.Options<Record<string, never>> & { max_pipeline?: number };
  /** Send `SELECT 1` with the simple query protocol (`.simple()`). */
  simple?: boolean;
}

/** Runs the scenario's query once on a postgres.js client (or one pooled connection's client). */
export function postgresJsQuery(
  sql: postgres.Sql<Record<string, unknown>>,
  ctx: PgContext,
  query: PgQuery,
  style: PostgresJsStyle = {},
): Promise<unknown> {
  if (query === "session") return sql`set statement_timeout = 5000`.then(() => sql`select 1`);
  if (query !== "insert") return style.simple ? sql`select 1`.simple() : sql`select 1`;
  const { cliente, descripcion, fecha_pedido } = ORDER_ROW;
  return sql`insert into ${sql(ctx.pedido)} (cliente, descripcion, fecha_pedido)
             values (${cliente}, ${descripcion}, ${fecha_pedido})`;
}

/** The operation of a scenario on a postgres.js client. */
export function postgresJsOp(
  sql: postgres.Sql<Record<string, unknown>>,
  ctx: PgContext,
  query: PgQuery,
  style: PostgresJsStyle = {},
): () => Promise<unknown> {
  return () => postgresJsQuery(sql, ctx, query, style);
}

/** postgres.js with its own pool of `PG_MAX` connections, warmed up. */
export async function openPostgresJs(
  ctx: PgContext,
  scenario: PgScenario,
  style: PostgresJsStyle = {},
): Promise<ContenderInstance> {
  const options = { max: PG_MAX, onnotice: () => {}, ...style.options };
  if (scenario.query === "connect") {
    const connectOnce = async () => {
      const one = postgres(ctx.url, { ...options, max: 1 }) as postgres.Sql<
        Record<string, unknown>
      >;
      await postgresJsQuery(one, ctx, "select1", style);
      await one.end({ timeout: 5 });
    };
    return {
      trial: (ms) => runCallers(scenario.concurrency, ms, connectOnce, true),
      close: () => Promise.resolve(),
    };
  }
  const sql = postgres(ctx.url, options) as postgres.Sql<Record<string, unknown>>;
  const op = scenario.query === "transaction"
    ? () => sql.begin((tx) => transactionBody(tx as unknown as typeof sql, ctx))
    : postgresJsOp(sql, ctx, scenario.query, style);
  // Open every connection (and prepare the statement on each) before measuring.
  await Promise.all(Array.from({ length: PG_MAX * 2 }, op));
  return {
    trial: (ms) => runCallers(scenario.concurrency, ms, op, true),
    close: () => sql.end({ timeout: 5 }),
  };
}

/** node-postgres `pg.Pool` of `PG_MAX` connections, warmed up. */
export async function openPgPool(
  ctx: PgContext,
  scenario: PgScenario,
): Promise<ContenderInstance> {
  if (scenario.query === "connect") {
    const connectOnce = async () => {
      const client = new pg.Client({ connectionString: ctx.url });
      await client.connect();
      await client.query("select 1");
      await client.end();
    };
    return {
      trial: (ms) => runCallers(scenario.concurrency, ms, connectOnce, true),
      close: () => Promise.resolve(),
    };
  }
  const pool = new pg.Pool({ connectionString: ctx.url, max: PG_MAX });
  // node-postgres emits "error" for an idle client whose server went away; unhandled, it would
  // crash the process. The pool drops that client; queries in flight still reject.
  pool.on("error", () => {});
  const { cliente, descripcion, fecha_pedido } = ORDER_ROW;
  const insert =
    `insert into ${ctx.pedido} (cliente, descripcion, fecha_pedido) values ($1, $2, $3)`;
  const values = [cliente, descripcion, fecha_pedido];
  const transaction = async () => {
    const client = await pool.connect();
    try {
      await client.query("begin");
      const { rows: [{ id }] } = await client.query(`${insert} returning id`, values);
      await client.query(`select cliente from ${ctx.pedido} where id = $1`, [id]);
      await client.query("commit");
    } catch (error) {
      await client.query("rollback").catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  };
  const op = scenario.query === "select1"
    ? () => pool.query("select 1")
    : scenario.query === "transaction"
    ? transaction
    : () => pool.query(insert, values);
  await Promise.all(Array.from({ length: PG_MAX * 2 }, op));
  return {
    trial: (ms) => runCallers(scenario.concurrency, ms, op, true),
    close: () => pool.end(),
  };
}

/** The scenarios of the database benchmarks. */
export function pgScenarios(concurrencies: readonly number[]): PgScenario[] {
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

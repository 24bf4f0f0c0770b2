/**
 * This package's PostgreSQL contenders: the adapter (`createPostgresPool`)
 * with its defaults or with extra options, and, one layer down, the core
 * `Pool` over bare postgres.js connections with no adapter code at all
 * (where the adapter's own cost per statement shows).
 *
 * Extra adapter options are plain objects, so that any setting can be
 * measured from the command line without a code change:
 *
 *   BENCH_PG_POOLKIT='{"poolkit unprepared": {"prepare": false}}' deno task bench postgres
 *
 * @module
 */

import postgres from "postgres";
import {
  createPostgresPool,
  type PostgresClient,
  type PostgresPool,
  type PostgresPoolOptions,
} from "../../adapters/postgres/mod.ts";
import { Pool } from "../../mod.ts";
import type { Contender, ContenderInstance } from "./benchmark.ts";
import { ORDER_ROW, type PgContext } from "./pg_context.ts";
import {
  PG_MAX,
  type PgQuery,
  type PgScenario,
  postgresJsQuery,
  transactionBody,
} from "./pg_drivers.ts";
import { runCallers } from "./workers.ts";

/** Name of the adapter with its defaults, each op a `pg.use()`. */
export const POOLKIT = "poolkit";
/** Name of the adapter with its defaults, each op a one-shot `pg.query` tagged template. */
export const POOLKIT_QUERY = "poolkit query()";
/** Name of the core Pool over bare postgres.js connections. */
export const BARE_POOL = "Pool + bare postgres.js";

/** Environment variable with extra adapter contenders: `{ "name": { ...options } }` (JSON). */
export const VARIANTS_ENV = "BENCH_PG_POOLKIT";

async function warmed(
  scenario: PgScenario,
  op: () => Promise<unknown>,
  close: () => Promise<void>,
): Promise<ContenderInstance> {
  try {
    await Promise.all(Array.from({ length: PG_MAX * 2 }, op));
  } catch (error) {
    await close();
    throw error;
  }
  return { trial: (ms) => runCallers(scenario.concurrency, ms, op, true), close };
}

/**
 * The adapter as a contender: `createPostgresPool({ url, pool: { max: 10 }, ...extra })`, each
 * op one `pg.use((sql) => ...)` (`api: "use"`) or one `` pg.query`...` `` (`api: "query"`, the
 * one-shot call, as `pool.query()` and postgres.js's `` sql`...` `` are). `extra` is untyped on
 * purpose (see the module comment); an option the adapter does not know is passed on like any
 * other and has no effect.
 */
export function poolkitContender(
  need: () => PgContext,
  name = POOLKIT,
  extra: Record<string, unknown> = {},
  api: "use" | "query" = "use",
): Contender {
  const shown = Object.keys(extra).length ? `, ...${JSON.stringify(extra)}` : "";
  const call = api === "use"
    ? "`pg.use((sql) => sql`...`)` (borrow a connection, run, give it back; in the " +
      "transaction scenario `pg.transaction((sql) => ...)`)"
    : "a one-shot `pg.query`...`` (tagged template)";
  return {
    name,
    description: `this package's \`createPostgresPool({ pool: { max: ${PG_MAX} }${shown} })\`` +
      (shown ? "" : " with its defaults") + `; each op is ${call}.`,
    ours: true,
    open(s) {
      const scenario = s as PgScenario;
      const c = need();
      const options = { ...extra, url: c.url, pool: { max: PG_MAX } } as PostgresPoolOptions;
      const pg = createPostgresPool(options);
      const query = (sql: PostgresClient) => postgresJsQuery(sql, c, scenario.query);
      const op = scenario.query === "transaction"
        ? () => pg.transaction((sql) => transactionBody(sql, c))
        : api === "use" || scenario.query === "session"
        ? () => pg.use(query)
        : oneShot(pg, c, scenario.query);
      return warmed(scenario, op, () => pg.close({ timeoutMs: 5_000 }));
    },
  };
}

/** The scenario's statement as one `pg.query` call: a tagged template, or text + values. */
function oneShot(pg: PostgresPool, c: PgContext, query: PgQuery): () => Promise<unknown> {
  if (query !== "insert") return () => pg.query`select 1`;
  const { cliente, descripcion, fecha_pedido } = ORDER_ROW;
  const text = `insert into ${c.pedido} (cliente, descripcion, fecha_pedido) values ($1, $2, $3)`;
  const values = [cliente, descripcion, fecha_pedido];
  return () => pg.query(text, values);
}

/** The contenders named in {@link VARIANTS_ENV}, if set; a clear error if it is not valid. */
export function variantsFromEnv(need: () => PgContext): Contender[] {
  const raw = Deno.env.get(VARIANTS_ENV);
  if (!raw) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (error) {
    throw new TypeError(
      `${VARIANTS_ENV} is not JSON (${(error as Error).message}); expected ` +
        `'{"poolkit reset never": {"reset": "never"}}'`,
    );
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new TypeError(`${VARIANTS_ENV} must be a JSON object of name → adapter options`);
  }
  return Object.entries(parsed).map(([name, extra]) => {
    if (typeof extra !== "object" || extra === null || Array.isArray(extra)) {
      throw new TypeError(`${VARIANTS_ENV}: the options of "${name}" must be an object`);
    }
    return poolkitContender(need, name, extra as Record<string, unknown>);
  });
}

/**
 * The core `Pool` (its defaults, `max: 10`) over postgres.js instances of `max: 1`: no tracking
 * proxy, no transaction bookkeeping, no validation, no reset, not reentrant. The floor the
 * adapter's own code stands on; it leaves session state to the next borrower.
 */
export function barePoolContender(need: () => PgContext, reentrant = false): Contender {
  return {
    name: BARE_POOL + (reentrant ? " reentrant" : ""),
    description: "layer below the adapter: this package's core `Pool` (`max: 10`, core defaults) " +
      "over bare `postgres(url, { max: 1 })` instances, `pool.use((sql) => sql`...`)`; no " +
      "adapter code (no statement tracking, validation or reset).",
    ours: true,
    open(s) {
      const scenario = s as PgScenario;
      const c = need();
      const pool = new Pool<PostgresClient>({
        max: PG_MAX,
        reentrant,
        create: async () => {
          const sql = postgres(c.url, {
            max: 1,
            idle_timeout: 0,
            max_lifetime: 0,
            onnotice: () => {},
          }) as PostgresClient;
          await sql`select 1`;
          return sql;
        },
        destroy: (sql) => sql.end({ timeout: 1 }),
      });
      const query = (sql: PostgresClient) => postgresJsQuery(sql, c, scenario.query);
      return warmed(scenario, () => pool.use(query), () => pool.close());
    },
  };
}

/**
 * The PostgreSQL contenders and the database they run against (`DATABASE_URL` or a throwaway
 * cluster, the same helper as the tests, plus the `pedido` table): this package's adapter
 * (`createPostgresPool`) with its defaults or with extra options; one layer down, the core
 * `Pool` over bare postgres.js connections (where the adapter's own cost shows); postgres.js
 * with its own pool, with one option changed or not; node-postgres `pg.Pool`; and no pool.
 *
 * Extra adapter options are plain objects, so that any setting can be measured from the command
 * line without a code change:
 *
 *   BENCH_PG_POOLKIT='{"poolkit unprepared": {"prepare": false}}' deno task bench postgres
 *
 * @module
 */

import pg from "pg";
import postgres from "postgres";
import {
  createPostgresPool,
  type PostgresClient,
  type PostgresPoolOptions,
} from "../../adapters/postgres/mod.ts";
import { Pool } from "../../mod.ts";
import { startDatabase } from "../setup/postgres.ts";
import { type Benchmark, callersOf, type Contender, type Scenario } from "./benchmark.ts";

/**
 * Which query a scenario runs; `"connect"`: open a new connection, `SELECT 1`, close it
 * (the cost a pool saves, and where drivers differ most); `"session"`: `SET statement_timeout`
 * then `SELECT 1` on the same connection, a borrower that leaves session state behind (what a
 * session-reset policy has to clean up); `"transaction"`: a transaction of one INSERT and one
 * SELECT of the inserted row, each contender with its own transaction API.
 */
export type PgQuery = "select1" | "insert" | "connect" | "session" | "transaction";

/** A PostgreSQL scenario: a query and a number of callers. */
export interface PgScenario extends Scenario {
  /** The query every operation runs. */
  query: PgQuery;
}

/** Pool size every pooled contender gets. */
const PG_MAX = 10;
/** Operations run at once before measuring: every connection opened, every statement prepared. */
const WARM_UP = PG_MAX * 2;

/** Name of the adapter with its defaults, each op a `pg.use()`. */
export const POOLKIT = "poolkit";
/** Name of the core Pool over bare postgres.js connections. */
export const BARE_POOL = "Pool + bare postgres.js";
/** Environment variable with extra adapter contenders: `{ "name": { ...options } }` (JSON). */
export const VARIANTS_ENV = "BENCH_PG_POOLKIT";

/** What the contenders need to know about the database. */
interface PgContext {
  /** Connection URL (contains the password: never print it). */
  url: string;
  /** The table inserts go to (`pedido`, or `schema.pedido` on a shared server). */
  pedido: string;
}

let ctx: PgContext | undefined;
const need = () => {
  if (!ctx) throw new Error("the database is not prepared");
  return ctx;
};

/**
 * A benchmark's `prepare`: starts the database (or connects to `DATABASE_URL`), creates the
 * `pedido` table of the orders demo and notes the server under the table; returns the cleanup.
 */
export async function prepareDatabase(bench: Benchmark): Promise<() => Promise<void>> {
  const log = (line: string) => console.error(`  ${line}`);
  const db = await startDatabase({ log });
  try {
    const pedido = db.table("pedido");
    await db.admin.unsafe(`create table if not exists ${pedido} (
      id serial primary key,
      cliente varchar(50) not null,
      descripcion text not null,
      fecha_pedido date not null
    )`);
    const [{ server_version }] = await db.admin`show server_version`;
    bench.notes!.push(`PostgreSQL ${server_version} at ${db.display}.`);
    ctx = { url: db.url, pedido };
  } catch (error) {
    await db.stop();
    throw error;
  }
  return async () => {
    ctx = undefined;
    // A cleanup failure (the folder already gone) must not hide the figures already measured.
    await db.stop().catch((e) => log(`PostgreSQL cleanup: ${e instanceof Error ? e.message : e}`));
  };
}

/** The row every insert writes, as parameters of {@link insertText}. */
const ORDER_VALUES = ["bench", "one order from the benchmark", "2026-01-15"];
const insertText = (c: PgContext) =>
  `insert into ${c.pedido} (cliente, descripcion, fecha_pedido) values ($1, $2, $3)`;

type Sql = postgres.Sql<Record<string, unknown>>;

/** Runs the scenario's query once on a postgres.js client (or one pooled connection's client). */
function postgresJsQuery(sql: Sql, query: PgQuery, simple = false): Promise<unknown> {
  if (query === "session") return sql`set statement_timeout = 5000`.then(() => sql`select 1`);
  if (query !== "insert") return simple ? sql`select 1`.simple() : sql`select 1`;
  const [cliente, descripcion, fecha_pedido] = ORDER_VALUES;
  return sql`insert into ${sql(ctx!.pedido)} (cliente, descripcion, fecha_pedido)
             values (${cliente}, ${descripcion}, ${fecha_pedido})`;
}

/** The transaction scenario's body on a postgres.js client inside a transaction. */
async function transactionBody(sql: Sql): Promise<unknown> {
  const [cliente, descripcion, fecha_pedido] = ORDER_VALUES;
  const [{ id }] = await sql<{ id: number }[]>`insert into ${sql(ctx!.pedido)}
    (cliente, descripcion, fecha_pedido) values (${cliente}, ${descripcion}, ${fecha_pedido})
    returning id`;
  return await sql`select cliente from ${sql(ctx!.pedido)} where id = ${id}`;
}

/**
 * The adapter as a contender: `createPostgresPool({ url, pool: { max: 10 }, ...extra })`, each
 * op one `pg.use((sql) => ...)` (`api: "use"`) or one `` pg.query`...` `` (`api: "query"`, the
 * one-shot call, as `pool.query()` and postgres.js's `` sql`...` `` are). `extra` is untyped on
 * purpose (see the module comment); an option the adapter does not know is passed on like any
 * other and has no effect.
 */
export function poolkit(
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
      const { query, concurrency } = s as PgScenario;
      const c = need();
      const options = { ...extra, url: c.url, pool: { max: PG_MAX } } as PostgresPoolOptions;
      const pool = createPostgresPool(options);
      const insert = insertText(c);
      const op = query === "transaction"
        ? () => pool.transaction(transactionBody)
        : api === "use" || query === "session"
        ? () => pool.use((sql) => postgresJsQuery(sql, query))
        : query === "insert"
        ? () => pool.query(insert, ORDER_VALUES)
        : () => pool.query`select 1`;
      return callersOf(concurrency, op, () => pool.close({ timeoutMs: 5_000 }), {
        warmUp: WARM_UP,
      });
    },
  };
}

/** The contenders named in {@link VARIANTS_ENV}, if set; a clear error if it is not valid. */
export function variantsFromEnv(): Contender[] {
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
    return poolkit(name, extra as Record<string, unknown>);
  });
}

/**
 * The core `Pool` (its defaults, `max: 10`) over postgres.js instances of `max: 1`: no tracking
 * proxy, no transaction bookkeeping, no validation, no reset, not reentrant. The floor the
 * adapter's own code stands on; it leaves session state to the next borrower.
 */
export const barePool: Contender = {
  name: BARE_POOL,
  description: "layer below the adapter: this package's core `Pool` (`max: 10`, core defaults) " +
    "over bare `postgres(url, { max: 1 })` instances, `pool.use((sql) => sql`...`)`; no " +
    "adapter code (no statement tracking, validation or reset).",
  ours: true,
  open(s) {
    const { query, concurrency } = s as PgScenario;
    const { url } = need();
    const pool = new Pool<PostgresClient>({
      max: PG_MAX,
      create: async () => {
        const options = { max: 1, idle_timeout: 0, max_lifetime: 0, onnotice: () => {} };
        const sql = postgres(url, options) as PostgresClient;
        await sql`select 1`;
        return sql;
      },
      destroy: (sql) => sql.end({ timeout: 1 }),
    });
    const op = () => pool.use((sql) => postgresJsQuery(sql, query));
    return callersOf(concurrency, op, () => pool.close(), { warmUp: WARM_UP });
  },
};

/** How a postgres.js contender issues its queries. */
export interface PostgresJsStyle {
  /** postgres.js options (merged over max, onnotice); `max_pipeline` is real but untyped. */
  options?: postgres.Options<Record<string, never>> & { max_pipeline?: number };
  /** Send `SELECT 1` with the simple query protocol (`.simple()`). */
  simple?: boolean;
}

/**
 * postgres.js with its own pool of 10 connections, warmed up; transactions with `sql.begin()`.
 * In the `"connect"` scenario, a connection of its own per op.
 */
export function postgresJs(
  name: string,
  description: string,
  style: PostgresJsStyle = {},
): Contender {
  return {
    name,
    description,
    ours: false,
    open(s) {
      const { query, concurrency } = s as PgScenario;
      const { url } = need();
      const options = { max: PG_MAX, onnotice: () => {}, ...style.options };
      if (query === "connect") {
        return callersOf(concurrency, async () => {
          const one = postgres(url, { ...options, max: 1 }) as Sql;
          await postgresJsQuery(one, "select1", style.simple);
          await one.end({ timeout: 5 });
        });
      }
      const sql = postgres(url, options) as Sql;
      const op = query === "transaction"
        ? () => sql.begin((tx) => transactionBody(tx as unknown as Sql))
        : () => postgresJsQuery(sql, query, style.simple);
      return callersOf(concurrency, op, () => sql.end({ timeout: 5 }), { warmUp: WARM_UP });
    },
  };
}

/**
 * node-postgres `pg.Pool` of 10 connections, warmed up, `pool.query(text, values)`; transactions
 * with `pool.connect()`, BEGIN, COMMIT, `release()`. In the `"connect"` scenario, a `pg.Client`
 * of its own per op.
 */
export function pgPool(description: string): Contender {
  return {
    name: "pg.Pool",
    description,
    ours: false,
    open(s) {
      const { query, concurrency } = s as PgScenario;
      const c = need();
      if (query === "connect") {
        return callersOf(concurrency, async () => {
          const client = new pg.Client({ connectionString: c.url });
          await client.connect();
          await client.query("select 1");
          await client.end();
        });
      }
      const pool = new pg.Pool({ connectionString: c.url, max: PG_MAX });
      // node-postgres emits "error" for an idle client whose server went away; unhandled, it
      // would crash the process. The pool drops that client; queries in flight still reject.
      pool.on("error", () => {});
      const insert = insertText(c);
      const transaction = async () => {
        const client = await pool.connect();
        try {
          await client.query("begin");
          const { rows: [{ id }] } = await client.query(`${insert} returning id`, ORDER_VALUES);
          await client.query(`select cliente from ${c.pedido} where id = $1`, [id]);
          await client.query("commit");
        } catch (error) {
          await client.query("rollback").catch(() => {});
          throw error;
        } finally {
          client.release();
        }
      };
      const op = query === "select1"
        ? () => pool.query("select 1")
        : query === "transaction"
        ? transaction
        : () => pool.query(insert, ORDER_VALUES);
      return callersOf(concurrency, op, () => pool.end(), { warmUp: WARM_UP });
    },
  };
}

/** A new postgres.js connection per query: what code without a pool does. */
export const noPool: Contender = {
  name: "no pool",
  description:
    "a new postgres.js connection per query (`postgres(url, { max: 1 })`, query, `end()`): " +
    "what code without a pool does.",
  ours: false,
  open(s) {
    const { query, concurrency } = s as PgScenario;
    return callersOf(concurrency, async () => {
      const sql = postgres(need().url, { max: 1, onnotice: () => {} });
      try {
        await postgresJsQuery(sql as Sql, query);
      } finally {
        await sql.end({ timeout: 5 });
      }
    });
  },
};

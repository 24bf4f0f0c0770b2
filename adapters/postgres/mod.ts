/**
 * PostgreSQL connections in a pool: postgres.js (`npm:postgres`) under `@poolkit/pool`.
 *
 * ```ts
 * import { createPostgresPool } from "@poolkit/pool/postgres";
 *
 * await using pg = createPostgresPool({ pool: { max: 5 } }); // url defaults to DATABASE_URL
 * const [{ now }] = await pg.query`select now()`;
 * await pg.transaction(async (sql) => {
 *   await sql`insert into pedido (cliente, descripcion, fecha_pedido) values ('Ana', 'té', now())`;
 * });
 * await pg.use((sql) => sql`select pg_sleep(10)`, { timeoutMs: 500 }); // cancelled on the server
 * ```
 *
 * @module
 */
export { type BoundQuery, createPostgresPool, PostgresPool, type Row } from "./pool.ts";
export {
  type CallOptions,
  noPool,
  perContext,
  type PostgresPoolOptions,
  type PostgresPoolSettings,
  queuePool,
  type QueuePoolOptions,
  type SessionReset,
  singleConnection,
  type TransactionOptions,
} from "./options.ts";
export type { DriverOptions, PooledConnection, PostgresClient } from "./connection.ts";
export {
  PostgresConnectionError,
  PostgresTimeoutError,
  TransactionRolledBackError,
} from "./errors.ts";
/** The core pool's errors a PostgreSQL call can reject with. */
export {
  CircuitOpenError,
  PoolClosedError,
  PoolOverloadedError,
  PoolTimeoutError,
} from "../../mod.ts";

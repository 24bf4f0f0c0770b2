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
 * await pg.use((sql) => sql`select pg_sleep(10)`, { deadlineMs: 500 }); // cancelled on the server
 * ```
 *
 * @module
 */
export {
  type BoundQuery,
  createPostgresPool,
  PostgresPool,
  type PostgresPoolOptions,
  type PostgresPoolSettings,
  type Row,
  type TransactionOptions,
} from "./pool.ts";
export { type DriverOptions, PgConnection, type PostgresClient } from "./connection.ts";
export {
  isConnectionFailure,
  isPermanentConnectError,
  PostgresConnectionError,
  PostgresDeadlineError,
  TransactionRolledBackError,
} from "./errors.ts";
export type { CallOptions } from "./call.ts";
export { SESSION_RESETS, type SessionReset } from "./session_reset.ts";
export type { TxStatus } from "./wire.ts";
export {
  noPool,
  perContext,
  queuePool,
  type QueuePoolOptions,
  singleConnection,
} from "./strategies.ts";
/** The core pool, its options and its errors, so one import serves an app. */
export * from "../../mod.ts";

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
 * A primary with standbys, writes only on the primary, short-lived passwords:
 *
 * ```ts
 * import { createPostgresPool } from "@poolkit/pool/postgres";
 *
 * await using pg = createPostgresPool({
 *   url: "postgres://app@10.0.0.1:5432,10.0.0.2:5432/shop",
 *   targetSessionAttrs: "read-write",
 *   credentials: () => ({ user: "app", password: Deno.env.get("PGPASSWORD") ?? "" }),
 * });
 * console.log(pg.stats().hosts); // [{ host: "10.0.0.1:5432", role: "primary", state: "up", ... }]
 * ```
 *
 * @module
 */
export { type BoundQuery, createPostgresPool, PostgresPool, type Row } from "./pool.ts";
export {
  type CallOptions,
  type HostOption,
  type LoadBalanceHosts,
  noPool,
  perContext,
  type PostgresPoolOptions,
  type PostgresPoolSettings,
  queuePool,
  type QueuePoolOptions,
  type SessionReset,
  singleConnection,
  type TargetSessionAttrs,
  type TransactionOptions,
} from "./options.ts";
export type { DriverOptions, PooledConnection, PostgresClient } from "./connection.ts";
export type { Credentials, CredentialsSource } from "./credentials.ts";
export { formatHostMetrics, type HostMetricsOptions } from "./host_metrics.ts";
export type {
  HostEvent,
  HostRole,
  HostStats,
  PostgresPoolEvent,
  PostgresPoolStats,
} from "./host_events.ts";
export {
  NoEligibleHostError,
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

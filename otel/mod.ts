/**
 * OpenTelemetry metrics for pools, named by the semantic conventions of a
 * database client connection pool (`db.client.connection.*`; the names are
 * listed in the package's docs/metrics.md). A separate
 * entry point: only code that imports `@poolkit/pool/otel` loads
 * `npm:@opentelemetry/api`.
 *
 * ```ts ignore
 * import { Pool } from "@poolkit/pool";
 * import { instrumentPool } from "@poolkit/pool/otel";
 *
 * const pool = new Pool({ name: "db", create: () => connect(), max: 10 });
 * instrumentPool(pool);
 * // OTEL_DENO=true OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318 deno run -A app.ts
 * ```
 *
 * @module
 */
export {
  type InstrumentablePool,
  instrumentPool,
  type InstrumentPoolOptions,
  type PoolInstrumentation,
} from "./instrument_pool.ts";

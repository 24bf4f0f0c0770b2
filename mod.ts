/**
 * An async-first resource pool for Deno: keep expensive connections open and
 * share them safely between concurrent tasks.
 *
 * ```ts
 * import { Pool } from "@poolkit/pool";
 *
 * const pool = new Pool({ create: () => Promise.resolve(new Map<string, string>()), max: 4 });
 * await using lease = await pool.acquire({ signal: AbortSignal.timeout(1_000) });
 * lease.resource.set("hello", "world");
 * ```
 *
 * @module
 */
export { Pool } from "./pool/pool.ts";
export { Lease } from "./pool/entry.ts";
export {
  CircuitOpenError,
  PoolClosedError,
  PoolError,
  PoolOverloadedError,
  PoolTimeoutError,
} from "./pool/errors.ts";
export {
  formatPrometheus,
  type PoolStatsSource,
  PROMETHEUS_CONTENT_TYPE,
  type PrometheusOptions,
} from "./pool/metrics.ts";
export * from "./pool/types.ts";

/**
 * The hosts of PostgreSQL pools in the Prometheus text format, next to what `formatPrometheus`
 * gives for the pools themselves: whether each host is up, its role as last seen, and the
 * pooled connections on it. Labels `pool` and `host` (`host:port` from the configured list, so
 * bounded), and `role` (three values).
 *
 * @module
 */
import { escapeLabelValue, header } from "../../pool/metrics.ts";
import { rejectUnknownOptions } from "../../pool/options.ts";
import type { HostRole, PostgresPoolStats } from "./host_events.ts";

/** Options of {@link formatHostMetrics}. */
export interface HostMetricsOptions {
  /** Prepended to every metric name, followed by `_`. Default `"pool"` (`pool_host_up`). */
  prefix?: string;
}

const ROLES: readonly HostRole[] = ["primary", "standby", "unknown"];

/**
 * `<prefix>_host_up{pool,host}` (1 up, 0 down), `<prefix>_host_connections{pool,host}` and
 * `<prefix>_host_role{pool,host,role}` (1 for the role as last seen, 0 for the others), for
 * each host of each pool.
 *
 * @example Serve them with the pool's own metrics
 * ```ts ignore
 * import { formatPrometheus } from "@poolkit/pool";
 * import { formatHostMetrics } from "@poolkit/pool/postgres";
 *
 * const text = formatPrometheus([pg]) + formatHostMetrics([pg]);
 * ```
 */
export function formatHostMetrics(
  pools: Iterable<{ stats(): PostgresPoolStats } | PostgresPoolStats>,
  options: HostMetricsOptions = {},
): string {
  rejectUnknownOptions("formatHostMetrics", options, ["prefix"]);
  const prefix = options.prefix ?? "pool";
  if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix)) {
    throw new TypeError(`formatHostMetrics: prefix ${JSON.stringify(prefix)} is not a metric name`);
  }
  const snapshots = [...pools].map((p) =>
    "stats" in p && typeof p.stats === "function" ? p.stats() : p as PostgresPoolStats
  );
  const rows = snapshots.flatMap((s) =>
    s.hosts.map((h) => ({
      h,
      labels: `pool="${escapeLabelValue(s.name)}",host="${escapeLabelValue(h.host)}"`,
    }))
  );
  const out: string[] = [];
  header(
    out,
    `${prefix}_host_up`,
    "gauge",
    "1 while the host is up, 0 after a failed connect until it answers again.",
  );
  for (const { h, labels } of rows) {
    out.push(`${prefix}_host_up{${labels}} ${h.state === "up" ? 1 : 0}`);
  }
  header(out, `${prefix}_host_connections`, "gauge", "Pooled connections on the host.");
  for (const { h, labels } of rows) {
    out.push(`${prefix}_host_connections{${labels}} ${h.connections}`);
  }
  header(
    out,
    `${prefix}_host_role`,
    "gauge",
    "The host's role as last seen: 1 for it (primary, standby or unknown), 0 for the others.",
  );
  for (const { h, labels } of rows) {
    for (const role of ROLES) {
      out.push(`${prefix}_host_role{${labels},role="${role}"} ${h.role === role ? 1 : 0}`);
    }
  }
  return out.join("\n") + "\n";
}

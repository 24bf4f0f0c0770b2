/**
 * The members of the HSM handle (one per configured token) as the service shows them: in
 * `/pool/stats` (each member's state, calls, errors, missing keys and own pool) and in
 * `/metrics` (families labelled `member`, one series per configured token, so the series count
 * is bounded by the configuration).
 *
 * @module
 */

import type { HsmMemberStats } from "../adapters/pkcs11/mod.ts";
import { escapeLabelValue, header } from "../pool/metrics.ts";
import { poolStatsJson, snakeCase } from "./pool_stats.ts";

/** One member as served by `GET /pool/stats`: its fields in snake case, its pool's under `pool`. */
export function memberJson(member: HsmMemberStats): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(member)) {
    if (value === undefined) continue;
    out[snakeCase(key)] = key === "pool" ? poolStatsJson(member.pool) : value;
  }
  return out;
}

/** The member families as Prometheus text exposition 0.0.4 (ends with a newline). */
export function formatMemberMetrics(
  members: readonly HsmMemberStats[],
  prefix = "secret_manager_hsm_member",
): string {
  const families: [string, "gauge" | "counter", string, (m: HsmMemberStats) => number][] = [
    [
      "up",
      "gauge",
      "1 while the member is in rotation, 0 while it is out.",
      (m) => m.state === "up" ? 1 : 0,
    ],
    ["in_flight", "gauge", "Operations running on the member now.", (m) => m.inFlight],
    ["calls_total", "counter", "Operations given to the member (a retried one counts on each).", (
      m,
    ) => m.calls],
    [
      "errors_total",
      "counter",
      "Operations that failed through a fault of the member (not of the call).",
      (m) => m.errors,
    ],
    [
      "missing_keys",
      "gauge",
      "Keys the other members hold and this one lacks.",
      (m) => m.missingKeys.length,
    ],
  ];
  const lines: string[] = [];
  for (const [suffix, type, help, value] of families) {
    const name = `${prefix}_${suffix}`;
    header(lines, name, type, help);
    for (const m of members) {
      lines.push(`${name}{member="${escapeLabelValue(m.name)}"} ${value(m)}`);
    }
  }
  return lines.join("\n") + "\n";
}

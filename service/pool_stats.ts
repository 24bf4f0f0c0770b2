/**
 * The JSON of `GET /pool/stats`: one object per pool, with the field names
 * operators of the original secret manager know (`max_size`, `current_size`,
 * `available`, `in_use`) followed by the rest of the pool's statistics in
 * snake case.
 *
 * @module
 */

import type { PoolStats } from "../mod.ts";

/** One pool's statistics as served by `GET /pool/stats`. */
export interface PoolStatsJson {
  name: string;
  max_size: number;
  current_size: number;
  available: number;
  in_use: number;
  pending: number;
  timed_out: number;
  breaker: PoolStats["breaker"];
  state: PoolStats["state"];
  min_size: number;
  creating: number;
  created: number;
  destroyed: number;
  acquired: number;
  released: number;
  aborted: number;
  create_errors: number;
  leaks: number;
  errors: number;
  acquire_wait_ms: PoolStats["acquireWaitMs"];
  /** Fields a pool adds to {@link PoolStats} (the HSM's `token_label`, `login_attempts`, ...). */
  [extra: string]: unknown;
}

/** Fields served under their own names, or left out (the histogram is for `/metrics`). */
const MAPPED = new Set<string>([
  "name",
  "max",
  "size",
  "idle",
  "inUse",
  "pending",
  "timedOut",
  "breaker",
  "state",
  "min",
  "creating",
  "created",
  "destroyed",
  "acquired",
  "released",
  "aborted",
  "createErrors",
  "leaks",
  "errors",
  "acquireWaitMs",
  "acquireWaitHistogram",
]);

function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** Renames a stats snapshot to the served shape. */
export function poolStatsJson(s: PoolStats): PoolStatsJson {
  const extras: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(s)) {
    if (!MAPPED.has(key)) extras[snakeCase(key)] = value;
  }
  return {
    name: s.name,
    max_size: s.max,
    current_size: s.size,
    available: s.idle,
    in_use: s.inUse,
    pending: s.pending,
    timed_out: s.timedOut,
    breaker: s.breaker,
    state: s.state,
    min_size: s.min,
    creating: s.creating,
    created: s.created,
    destroyed: s.destroyed,
    acquired: s.acquired,
    released: s.released,
    aborted: s.aborted,
    create_errors: s.createErrors,
    leaks: s.leaks,
    errors: s.errors,
    acquire_wait_ms: s.acquireWaitMs,
    ...extras,
  };
}

/**
 * The JSON of `GET /pool/stats`: one object per pool, its size first
 * (`max_size`, `current_size`, `available`, `in_use`), then the rest of the
 * pool's statistics in snake case.
 *
 * @module
 */

import type { PoolStats } from "../mod.ts";

/** One pool's statistics as served by `GET /pool/stats`. */
export interface PoolStatsJson {
  /** The pool's name. */
  name: string;
  /** Configured maximum (`max`). */
  max_size: number;
  /** Resources alive now, idle + in use (`size`). */
  current_size: number;
  /** Idle resources ready to hand out (`idle`). */
  available: number;
  /** Resources lent out (`inUse`). */
  in_use: number;
  /** Callers waiting for a resource. */
  pending: number;
  /** Acquires that gave up at their deadline (`timedOut`). */
  timed_out: number;
  /** Circuit breaker state. */
  breaker: PoolStats["breaker"];
  /** Lifecycle state. */
  state: PoolStats["state"];
  /** Configured minimum (`min`). */
  min_size: number;
  /** Creations under way. */
  creating: number;
  /** Resources created since the start. */
  created: number;
  /** Resources destroyed since the start. */
  destroyed: number;
  /** Leases handed out since the start. */
  acquired: number;
  /** Leases ended since the start. */
  released: number;
  /** Acquires ended by their caller's signal. */
  aborted: number;
  /** Creations that failed (`createErrors`). */
  create_errors: number;
  /** Leases reported as leaked. */
  leaks: number;
  /** Errors in background work. */
  errors: number;
  /** Recent acquire waits in ms: p50, p99, max. */
  acquire_wait_ms: PoolStats["acquireWaitMs"];
  /** Fields a pool adds to {@link PoolStats} (the HSM's `token_label`, `login_attempts`, ...). */
  [extra: string]: unknown;
}

/** Fields served under their own names, or left out (the histogram is for `/metrics`). */
const MAPPED = new Set<string>([
  "name",
  "max",
  "maxIdle",
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
  "createTimeHistogram",
  "useTimeHistogram",
]);

/** `inUse` → `in_use`. */
export function snakeCase(name: string): string {
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

/**
 * The HSM benchmark's targets: the default configuration (a pool of 4) at
 * least as fast as hand-written pkcs11js `*Async` code over as many
 * sessions, at 32 callers and with 1; behind the slow module that stands in
 * for a network HSM, at least 1.5× it at 32 callers; the event loop free
 * throughout (timer lateness p99 under 5 ms); and p50 far below the
 * per-request pattern.
 *
 * @module
 */

import type { Target, TargetCondition } from "./targets.ts";

/** The adapter's default configuration (`openHsm` defaults to `max: 4`). */
export const DEFAULT_CONTENDER = "pool default ×4";
/** Hand-written pkcs11js `*Async` calls on as many sessions (1 for 1 caller, 4 for 32). */
export const HAND_WRITTEN = "hand-written async";
/** Raw pkcs11js, one session, synchronous loop. */
export const RAW_LOOP = "raw sync loop";

/** "With the event loop free": 1 ms timer p99 lateness under 5 ms during the run. */
const LOOP_FREE: TargetCondition = { metric: "timerLatenessP99Ms", direction: "atMost", limit: 5 };

const what = (op: "aes" | "ecdsa") => (op === "aes" ? "AES-GCM" : "ECDSA sign");

function ofOp(op: "aes" | "ecdsa"): Target[] {
  const faster = (scenario: string, limit: number, peer: string): Target => ({
    label: `${DEFAULT_CONTENDER}, ${what(op)}, ${peer}: ops/s ≥ ${
      limit.toFixed(1)
    }× hand-written *Async`,
    scenario,
    metric: "opsPerSec",
    contender: DEFAULT_CONTENDER,
    baseline: HAND_WRITTEN,
    direction: "atLeast",
    limit,
  });
  const loopFree = (scenario: string, peer: string): Target => ({
    label: `${DEFAULT_CONTENDER}, ${what(op)}, ${peer}: timer lateness p99 < 5 ms`,
    scenario,
    contender: DEFAULT_CONTENDER,
    ...LOOP_FREE,
  });
  return [
    faster(`${op}-c32`, 1.0, "32 callers on 4 sessions"),
    loopFree(`${op}-c32`, "32 callers"),
    {
      label: `${DEFAULT_CONTENDER}, ${what(op)}, 32 callers: p50 ≥ 80% below per-request`,
      scenario: `${op}-c32`,
      metric: "p50",
      contender: DEFAULT_CONTENDER,
      baseline: "per-request",
      direction: "atMost",
      limit: 0.2,
    },
    faster(`${op}-c1`, 1.0, "1 caller on 1 session"),
    loopFree(`${op}-c1`, "1 caller"),
    faster(`${op}-slow-c32`, 1.5, "slow module, 32 callers"),
    loopFree(`${op}-slow-c32`, "slow module, 32 callers"),
  ];
}

/** Every target of the HSM benchmark. */
export function hsmTargets(): Target[] {
  return [...ofOp("aes"), ...ofOp("ecdsa")];
}

/**
 * `GET /healthz`: 200 when the HSM pool can hand out a working session, 503
 * with the reason when the circuit breaker is open, the token does not
 * answer, or the service is shutting down. A refused PIN gets its own
 * reason: which CKR code, and that the fix is a new PIN and a restart.
 *
 * A pool whose sessions are all busy is healthy (it is handing them out), so
 * the check does not queue behind real traffic and a load spike never makes
 * an orchestrator restart a working service.
 *
 * @module
 */

import type { PoolStats } from "../mod.ts";
import type { HsmSession } from "../adapters/pkcs11/mod.ts";
import { errorText } from "./log.ts";
import { pinRefusal, pinRefusalAdvice } from "./pin_refusal.ts";
import { pingToken, type SessionSource } from "./token_check.ts";

/** What `/healthz` needs of the HSM handle. */
export interface HealthSource extends SessionSource {
  /** The pool's statistics. */
  stats(): PoolStats;
}

/** The `/healthz` body. */
export interface Health {
  /** `"ok"` (200) or `"unavailable"` (503). */
  status: "ok" | "unavailable";
  /** Why it is unavailable, or a note on an ok answer. */
  reason?: string;
  /** The HSM pool's breaker state. */
  breaker: PoolStats["breaker"];
}

/** Checks the session, then the token itself: fails when either is gone. */
function ping(session: HsmSession): void {
  session.info();
  pingToken(session);
}

/** Runs the health check; `timeoutMs` bounds the wait for an idle session. */
export async function checkHealth(hsm: HealthSource, timeoutMs: number): Promise<Health> {
  const stats = hsm.stats();
  if (stats.state !== "open") {
    return {
      status: "unavailable",
      reason: "the service is shutting down",
      breaker: stats.breaker,
    };
  }
  if (stats.breaker !== "open" && stats.idle === 0 && stats.size + stats.creating >= stats.max) {
    return { status: "ok", reason: "all sessions are busy", breaker: stats.breaker };
  }
  try {
    await hsm.use((session) => Promise.resolve(ping(session)), { timeoutMs });
    return { status: "ok", breaker: hsm.stats().breaker };
  } catch (error) {
    const ckr = pinRefusal(error);
    return {
      status: "unavailable",
      reason: ckr ? pinRefusalAdvice(ckr) : `no working HSM session: ${errorText(error)}`,
      breaker: hsm.stats().breaker,
    };
  }
}

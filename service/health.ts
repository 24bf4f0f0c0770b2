/**
 * `GET /healthz`: 200 when the HSM pool can hand out a working session, 503
 * with the reason when the circuit breaker is open, the token does not
 * answer, or the service is shutting down. A refused PIN gets its own
 * reason: which CKR code, and that the fix is a new PIN and a restart.
 *
 * With several tokens (an HSM group), the body lists the members; it is 200
 * `degraded` while some member is out and another serves, and 503
 * `unavailable` when every member is out.
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

/** A member of the HSM handle as `/healthz` shows it. */
export interface MemberHealth {
  /** The member's name (its token label). */
  name: string;
  /** In rotation (`"up"`) or not (`"out"`). */
  state: "up" | "out";
  /** Why it is out. */
  reason?: string;
}

/** What `/healthz` needs of the HSM handle. */
export interface HealthSource extends SessionSource {
  /** The pool's statistics, with each member's state. */
  stats(): PoolStats & { members: readonly MemberHealth[] };
}

/** The `/healthz` body. */
export interface Health {
  /** `"ok"` (200), `"degraded"` (200: a member is out, others serve) or `"unavailable"` (503). */
  status: "ok" | "degraded" | "unavailable";
  /** Why it is unavailable or degraded, or a note on an ok answer. */
  reason?: string;
  /** The HSM pool's breaker state. */
  breaker: PoolStats["breaker"];
  /** Each member's state, when the service uses several tokens. */
  members?: MemberHealth[];
}

/** The members worth showing (a group's), and the words for those that are out. */
function membersOf(stats: ReturnType<HealthSource["stats"]>) {
  if (stats.members.length < 2) return { out: [] as MemberHealth[] };
  const members = stats.members.map(({ name, state, reason }) => ({
    name,
    state,
    ...(reason === undefined ? {} : { reason }),
  }));
  const out = members.filter((m) => m.state === "out");
  return { members, out, outText: out.map((m) => `${m.name} (${m.reason ?? "out"})`).join(", ") };
}

/** `ok`, or `degraded` naming the members that are out. */
function served(health: Health, source: HealthSource): Health {
  const { members, out, outText } = membersOf(source.stats());
  if (!members) return health;
  if (out.length === 0) return { ...health, members };
  const reason = `${out.length === 1 ? "member" : "members"} out of rotation: ${outText}`;
  return { ...health, status: "degraded", reason, members };
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
  const { members, out, outText } = membersOf(stats);
  if (members && out.length === members.length) {
    return {
      status: "unavailable",
      reason: `every HSM member is out of rotation: ${outText}`,
      breaker: stats.breaker,
      members,
    };
  }
  if (stats.breaker !== "open" && stats.idle === 0 && stats.size + stats.creating >= stats.max) {
    return served({ status: "ok", reason: "all sessions are busy", breaker: stats.breaker }, hsm);
  }
  try {
    await hsm.use((session) => Promise.resolve(ping(session)), { timeoutMs });
    return served({ status: "ok", breaker: hsm.stats().breaker }, hsm);
  } catch (error) {
    const now = membersOf(hsm.stats());
    if (now.members && now.out.length < now.members.length) {
      // The ping met a member on its way out; another still serves.
      return served({ status: "ok", breaker: hsm.stats().breaker }, hsm);
    }
    const ckr = pinRefusal(error);
    return {
      status: "unavailable",
      reason: ckr ? pinRefusalAdvice(ckr) : `no working HSM session: ${errorText(error)}`,
      breaker: hsm.stats().breaker,
      ...(now.members ? { members: now.members } : {}),
    };
  }
}

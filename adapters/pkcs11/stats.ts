/**
 * The stats of a handle: each member's ({@link HsmMemberStats}) and, at
 * the top, their pools' numbers summed ({@link HsmStats}).
 *
 * @module
 */
import type { HistogramSnapshot, PoolStats } from "../../pool/types.ts";
import type { HsmMemberState, Seat } from "./group.ts";
import type { MemberStats } from "./member.ts";

/** {@link PoolStats} plus what the HSM handle knows. */
export interface HsmStats extends PoolStats {
  /** Real path of the (first member's) module. */
  library: string;
  /** The (first member's) token label. */
  tokenLabel: string;
  /** The slot the (first member's) token is in now. */
  slotId: number;
  /** Where crypto calls run: this thread while the module is fast, else worker threads (any member). */
  calls: "this thread" | "worker threads";
  /** `C_Login` calls on the tokens since they were opened in this process (all handles). */
  loginAttempts: number;
  /** Logins again after a token was logged out behind this handle's back. */
  relogins: number;
  /** Times a module was initialised again after someone else finalised it. */
  reinitialisations: number;
  /**
   * Each member (one for a handle on one token): its state, calls and
   * errors, the keys it lacks, and its own pool's numbers. The pool
   * numbers above are their sums (wait percentiles: the highest member's).
   */
  members: HsmMemberStats[];
}

/** One member of a handle, in {@link HsmStats.members}. */
export interface HsmMemberStats extends MemberStats {
  /** The member's name (its pool is named `hsm:<name>`). */
  name: string;
  /** `"up"`: in rotation; `"out"`: out of rotation, see `reason`. */
  state: HsmMemberState;
  /** Why the member is out (the CKR name where there is one); `undefined` while up. */
  reason?: string;
  /** Operations running on it now. */
  inFlight: number;
  /** Operations it was given since the handle opened (a retried one counts on each member). */
  calls: number;
  /** Operations that failed on it (some then ran on another member). */
  errors: number;
  /** `CKA_ID`s (hex) of keys other members hold and it lacks (same id, kind and label). */
  missingKeys: string[];
}

/** The stats of a handle whose members sit in `seats`. */
export function handleStats(seats: readonly Seat[]): HsmStats {
  const members = seats.map(memberStats);
  const first = members[0];
  const top = members.length === 1 ? first.pool : sumStats(members.map((m) => m.pool));
  return {
    ...top,
    library: first.library,
    tokenLabel: first.tokenLabel,
    slotId: first.slotId,
    calls: members.some((m) => m.runsOn === "worker threads") ? "worker threads" : "this thread",
    loginAttempts: sum(members, "loginAttempts"),
    relogins: sum(members, "relogins"),
    reinitialisations: sum(members, "reinitialisations"),
    members,
  };
}

function memberStats(seat: Seat): HsmMemberStats {
  return {
    name: seat.member.name,
    state: seat.state,
    reason: seat.reason,
    inFlight: seat.inFlight,
    calls: seat.calls,
    errors: seat.errors,
    missingKeys: [...seat.missingKeys],
    ...seat.member.stats(),
  };
}

function sum<S>(
  items: readonly S[],
  key: { [K in keyof S]: S[K] extends number ? K : never }[keyof S],
): number {
  let total = 0;
  for (const item of items) total += item[key] as number;
  return total;
}

const SUMMED = [
  "min",
  "max",
  "maxIdle",
  "size",
  "idle",
  "inUse",
  "pending",
  "creating",
  "created",
  "destroyed",
  "acquired",
  "released",
  "timedOut",
  "aborted",
  "createErrors",
  "leaks",
  "errors",
] as const;

/** The pool numbers of a group: counters summed, histograms merged, percentiles the highest. */
function sumStats(members: readonly PoolStats[]): PoolStats {
  const first = members[0];
  const stats: PoolStats = {
    ...first,
    name: members.map((m) => m.name).join("+"),
    breaker: members.find((m) => m.breaker === "closed")?.breaker ?? first.breaker,
    acquireWaitMs: {
      p50: Math.max(...members.map((m) => m.acquireWaitMs.p50)),
      p99: Math.max(...members.map((m) => m.acquireWaitMs.p99)),
      max: Math.max(...members.map((m) => m.acquireWaitMs.max)),
    },
    acquireWaitHistogram: merged(members.map((m) => m.acquireWaitHistogram)),
    createTimeHistogram: merged(members.map((m) => m.createTimeHistogram)),
    useTimeHistogram: merged(members.map((m) => m.useTimeHistogram)),
  };
  for (const key of SUMMED) stats[key] = sum(members, key);
  return stats;
}

function merged(histograms: readonly HistogramSnapshot[]): HistogramSnapshot {
  const [first, ...rest] = histograms;
  const out = { ...first, counts: [...first.counts], sumsMs: [...first.sumsMs] };
  for (const h of rest) {
    h.counts.forEach((c, i) => out.counts[i] += c);
    h.sumsMs.forEach((s, i) => out.sumsMs[i] += s);
    out.count += h.count;
    out.sumMs += h.sumMs;
    if (h.count > 0) {
      out.minMs = out.count === h.count ? h.minMs : Math.min(out.minMs, h.minMs);
      out.maxMs = Math.max(out.maxMs, h.maxMs);
    }
  }
  return out;
}

/**
 * {@link Group}: the members of a handle and which one serves a call. A
 * call goes to the member that is up with the fewest calls in flight (ties
 * in turn); when a member fails (the token is gone, the device errs,
 * `CKR_GENERAL_ERROR` several times in a row, a crypto call does not answer
 * within `callTimeoutMs`, its sessions can not be opened, or it refuses the
 * PIN) it goes out of rotation at once: the calls waiting on it are woken,
 * and a call that is safe to repeat runs again on another member within its
 * caller's deadline. A member that is out is probed in the background
 * ({@link Recovery}) and comes back once it answers. A one-member group
 * never goes out: its calls behave as a plain handle's.
 *
 * @module
 */
import { CircuitOpenError } from "../../mod.ts";
import type { Clock } from "../../pool/clock.ts";
import { EventHub } from "../../pool/events.ts";
import type { CloseOptions } from "../../pool/types.ts";
import { CKR, errorCode, HsmError, isLoginRefusal, KeyNotFoundError } from "./errors.ts";
import { isUnanswered, type Member } from "./member.ts";
import type { FailoverSettings } from "./options.ts";
import { Recovery } from "./recovery.ts";
import type { Deadline } from "./threads.ts";

/** Whether a member serves calls (`"up"`) or is out of rotation (`"out"`). */
export type HsmMemberState = "up" | "out";

/** What happens to the members of a handle, as seen by `Hsm.events()`. */
export type HsmMemberEvent =
  | {
    /** The member left the rotation. */
    type: "member-out";
    /** Its name. */
    member: string;
    /** Why, in words (the CKR name where there is one). */
    reason: string;
    /** `false` when no probe will bring it back (its PIN was refused): open a new handle. */
    probing: boolean;
  }
  | {
    /** The member answered a probe and is back in rotation. */
    type: "member-up";
    /** Its name. */
    member: string;
  }
  | {
    /** The member lacks keys the others have (found at open and when it comes back). */
    type: "keys-missing";
    /** Its name. */
    member: string;
    /** The `CKA_ID`s (hex) it lacks. */
    keyIds: string[];
  };

/** Codes that take a member out at once: the device or token is gone. */
const MEMBER_DOWN_CODES: ReadonlySet<number> = new Set([
  CKR.DEVICE_REMOVED,
  CKR.TOKEN_NOT_PRESENT,
  CKR.DEVICE_ERROR,
  CKR.TOKEN_NOT_RECOGNIZED,
]);

/** One member's place in the rotation. State changes only through `Group.setOut` and `#setUp`. */
export class Seat {
  state: HsmMemberState = "up";
  reason: string | undefined;
  /** `false` once it is out for good (its PIN was refused): no probe brings it back. */
  probing = true;
  inFlight = 0;
  calls = 0;
  errors = 0;
  generalErrorsInRow = 0;
  missingKeys: string[] = [];
  /** Aborted when the member goes out: wakes the calls waiting on it. */
  out: AbortController = new AbortController();

  constructor(readonly member: Member) {}
}

/** Every member of the group is out: the reason of each. */
export class NoMemberUpError extends HsmError {
  /** Makes the error from the members' names and reasons. */
  constructor(seats: readonly Seat[]) {
    super(
      "no member of the HSM group is up: " +
        seats.map((s) =>
          `${s.member.name}: ${s.reason ?? "out"}` +
          (s.probing ? "" : " (out for good: fix its PIN, then open a new handle)")
        ).join("; ") +
        (seats.some((s) => s.probing)
          ? " (members out for a fault come back by themselves once they answer a probe)"
          : ""),
      { operation: "group" },
    );
    this.name = "NoMemberUpError";
  }
}

const expired = (deadline: Deadline | undefined) =>
  deadline?.signal?.aborted === true ||
  (deadline?.until !== undefined && performance.now() >= deadline.until);

/** The members of one handle, their rotation and their recovery. */
export class Group {
  readonly seats: readonly Seat[];
  readonly events: EventHub<HsmMemberEvent> = new EventHub();
  readonly #single: boolean;
  readonly #failover: FailoverSettings;
  readonly #recovery: Recovery;
  #turn = 0;
  #closed = false;

  /** A rotation over `members` (all up), probing on `clock`. */
  constructor(members: readonly Member[], failover: FailoverSettings, clock: Clock) {
    this.seats = members.map((m) => new Seat(m));
    this.#single = members.length === 1;
    this.#failover = failover;
    this.#recovery = new Recovery(clock, failover.probeMinMs, failover.probeMaxMs);
  }

  /** The first member (a one-member handle's only one). */
  get first(): Member {
    return this.seats[0].member;
  }

  /**
   * Runs `op` on a member. `repeatable`: on a failure of the member (or a
   * key it lacks) `op` runs again on another member that is up, while the
   * caller's deadline allows.
   */
  run<T>(
    op: (member: Member, deadline: Deadline | undefined) => Promise<T>,
    deadline: Deadline | undefined,
    repeatable: boolean,
  ): Promise<T> {
    if (this.#single) return this.#runOn(this.seats[0], op, deadline);
    return this.#runWithFailover(op, deadline, repeatable);
  }

  async #runWithFailover<T>(
    op: (member: Member, deadline: Deadline | undefined) => Promise<T>,
    deadline: Deadline | undefined,
    repeatable: boolean,
  ): Promise<T> {
    let tried: Seat[] | undefined;
    for (;;) {
      const seat = this.#pick(tried);
      const out = seat.out.signal;
      const signal = deadline?.signal === undefined ? out : AbortSignal.any([deadline.signal, out]);
      try {
        return await this.#runOn(seat, op, { ...deadline, signal });
      } catch (error) {
        const retry = this.#judge(seat, out, error);
        if (!retry || !repeatable || expired(deadline)) throw error;
        (tried ??= []).push(seat);
        if (!this.seats.some((s) => s.state === "up" && !tried!.includes(s))) throw error;
      }
    }
  }

  async #runOn<T>(
    seat: Seat,
    op: (member: Member, deadline: Deadline | undefined) => Promise<T>,
    deadline: Deadline | undefined,
  ): Promise<T> {
    seat.inFlight++;
    seat.calls++;
    try {
      const value = await op(seat.member, deadline);
      seat.generalErrorsInRow = 0;
      return value;
    } catch (error) {
      // A one-member handle never moves a call, but its member's faults count all the same.
      if (this.#single) this.#judge(seat, seat.out.signal, error);
      throw error;
    } finally {
      seat.inFlight--;
    }
  }

  /** The member that is up with the fewest calls in flight, not in `tried`; ties in turn. */
  #pick(tried: readonly Seat[] | undefined): Seat {
    const seats = this.seats, n = seats.length;
    const start = this.#turn = (this.#turn + 1) % n;
    let best: Seat | undefined;
    for (let i = 0; i < n; i++) {
      const seat = seats[(start + i) % n];
      if (seat.state !== "up" || tried?.includes(seat)) continue;
      if (best === undefined || seat.inFlight < best.inFlight) best = seat;
    }
    if (best === undefined) throw new NoMemberUpError(seats);
    return best;
  }

  /**
   * What a failure says of the member (it may go out), and whether the call
   * may move to another member: `false` for the caller's own errors.
   */
  #judge(seat: Seat, out: AbortSignal, error: unknown): boolean {
    if (out.aborted) return true; // it went out while the call ran or waited
    if (error instanceof KeyNotFoundError) return true;
    const code = errorCode(error);
    if (code === CKR.GENERAL_ERROR) {
      seat.errors++;
      if (++seat.generalErrorsInRow >= this.#failover.generalErrors) {
        this.setOut(seat, `${seat.generalErrorsInRow} CKR_GENERAL_ERROR in a row`, true);
      }
      return true;
    }
    const reason = isLoginRefusal(error) || (code !== undefined && MEMBER_DOWN_CODES.has(code))
      ? (error as Error).message
      : isUnanswered(error)
      ? `a call did not answer within ${this.#failover.callTimeoutMs} ms`
      : error instanceof CircuitOpenError
      ? `its sessions can not be opened: ${error.message}`
      : undefined;
    if (reason === undefined) return false; // the call's own error: not the member's
    seat.errors++;
    this.setOut(seat, reason, !isLoginRefusal(error));
    return true;
  }

  /**
   * Takes a member out of rotation (the one place that does): wakes the
   * calls waiting on it, tells the subscribers, and
   * starts probing it unless `probing` is `false` (it can never come back).
   */
  setOut(seat: Seat, reason: string, probing: boolean): void {
    if (this.#single || this.#closed) return;
    // Out already, only a refused PIN (it was changed while out) says more: out for good.
    if (seat.state === "out" && probing) return;
    if (seat.state === "up") {
      seat.out.abort(
        new HsmError(`member ${seat.member.name} is out: ${reason}`, { operation: "group" }),
      );
    }
    seat.state = "out";
    seat.reason = reason;
    seat.probing = probing;
    // Its sessions are retired by the probe that finds it answering: closing one now could hang.
    if (this.events.active) {
      this.events.emit({ type: "member-out", member: seat.member.name, reason, probing });
    }
    if (probing) this.#recovery.start(seat, () => this.#probe(seat));
  }

  /** Brings a member back into rotation (the one place that does). */
  #setUp(seat: Seat): void {
    seat.state = "up";
    seat.reason = undefined;
    seat.generalErrorsInRow = 0;
    seat.out = new AbortController();
    if (this.events.active) this.events.emit({ type: "member-up", member: seat.member.name });
  }

  /** One probe of a member that is out; `true` once probing may stop. */
  async #probe(seat: Seat): Promise<boolean> {
    if (this.#closed || seat.state === "up") return true;
    const timeoutMs = this.#failover.callTimeoutMs;
    const deadline = { timeoutMs, until: performance.now() + timeoutMs };
    try {
      await seat.member.probe(deadline);
      await this.checkKeys([seat], deadline);
    } catch {
      if (seat.member.refusal === undefined) return false;
      this.setOut(seat, seat.member.refusal.message, false);
      return true;
    }
    if (this.#closed) return true;
    this.#setUp(seat);
    return true;
  }

  /**
   * Finds which keys each of `seats` lacks, compared with every member that
   * is up (and `seats`), by `CKA_ID`, kind and label. Returns the key names
   * every member up holds.
   */
  async checkKeys(seats: readonly Seat[], deadline?: Deadline): Promise<Set<string>> {
    const listed = this.seats.filter((s) => s.state === "up" || seats.includes(s));
    const results = await Promise.allSettled(listed.map((s) => s.member.keyNames(deadline)));
    // `seats` must answer; another member that can not list its keys now (busy or failing: its
    // own calls will tell) is left out of the comparison rather than keeping `seats` out.
    results.forEach((r, i) => {
      if (r.status === "rejected" && seats.includes(listed[i])) throw r.reason;
    });
    const up = listed.filter((_, i) => results[i].status === "fulfilled");
    const names = results.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
    const all = new Set(names.flatMap((n) => [...n]));
    const common = new Set([...all].filter((name) => names.every((n) => n.has(name))));
    up.forEach((seat, i) => {
      if (!seats.includes(seat)) return;
      const ids = [...all].filter((name) => !names[i].has(name)).map((name) => name.split(":")[1]);
      seat.missingKeys = [...new Set(ids)];
      if (seat.missingKeys.length > 0 && this.events.active) {
        this.events.emit({
          type: "keys-missing",
          member: seat.member.name,
          keyIds: seat.missingKeys,
        });
      }
    });
    return common;
  }

  /** Stops the probes, then closes every member. */
  async close(options?: CloseOptions): Promise<void> {
    this.#closed = true;
    await this.#recovery.close();
    const closing = await Promise.allSettled(this.seats.map((s) => s.member.close(options)));
    this.events.close();
    const failed = closing.find((c) => c.status === "rejected");
    if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
  }
}

/**
 * {@link Hsm}: pools of PKCS#11 sessions on one token or on a group of
 * tokens holding clones of the same keys, opened with {@link openHsm}. Each
 * operation is written once, over one member (`member.ts`, the call path);
 * the group (`group.ts`) picks the member and moves a call that is safe to
 * repeat to another member when one fails.
 *
 * @module
 */
import type { Lease, Pool } from "../../mod.ts";
import { CLOCK, systemClock } from "../../pool/clock.ts";
import type {
  AcquireOptions,
  CloseOptions,
  HistogramSnapshot,
  PoolStats,
} from "../../pool/types.ts";
import { HsmError, isLoginRefusal, isStaleHandle, KeyNotFoundError } from "./errors.ts";
import { Group, type HsmMemberEvent, type HsmMemberState, type Seat } from "./group.ts";
import { deadlineOf, Member, type MemberStats } from "./member.ts";
import { type HsmKey, pickRandom } from "./ops.ts";
import {
  checkOptions,
  failoverSettings,
  type MemberConfig,
  memberConfigs,
  type OpenHsmInternals,
  type OpenHsmOptions,
} from "./options.ts";
import type { HsmSession } from "./session.ts";
import type { Deadline } from "./threads.ts";

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

/** The result of {@link Hsm.encrypt}: the sealed bytes and the key that sealed them. */
export interface Sealed {
  /** `IV ‖ ciphertext ‖ tag`. */
  ciphertext: Uint8Array<ArrayBuffer>;
  /** The key's `CKA_ID` as hex: pass it to {@link Hsm.decrypt}. */
  keyId: string;
}

/** Options of {@link Hsm.encrypt} and {@link Hsm.decrypt}: the call's bounds, and the AAD. */
export interface SealOptions extends AcquireOptions {
  /** Additional authenticated data: the same bytes must be given to decrypt. */
  aad?: Uint8Array;
}

/** Options of {@link Hsm.decrypt}. */
export interface DecryptOptions extends SealOptions {
  /**
   * Only a key with this label may decrypt: a key id outside it is a
   * {@link KeyNotFoundError}, the same answer as an unknown id, so labels
   * can separate purposes or tenants.
   */
  label?: string;
}

/** A lease of one session (the pool's `Lease<HsmSession>`). */
export type HsmLease = Lease<HsmSession>;

/**
 * Crypto on keys you already hold; the handle finds a session. `options`
 * bound the whole call (`signal`, `timeoutMs`), as in `use()`. A held key
 * whose handle went stale (the token was logged in again) is found again by
 * its `CKA_ID`.
 */
export interface HsmOps {
  /** AES-GCM: `IV ‖ ciphertext ‖ tag` with a random 12-byte IV. */
  encrypt(
    key: HsmKey,
    plaintext: Uint8Array,
    aad?: Uint8Array,
    options?: AcquireOptions,
  ): Promise<Uint8Array<ArrayBuffer>>;
  /** AES-GCM decryption of `IV ‖ ciphertext ‖ tag`. */
  decrypt(
    key: HsmKey,
    sealed: Uint8Array,
    aad?: Uint8Array,
    options?: AcquireOptions,
  ): Promise<Uint8Array<ArrayBuffer>>;
  /** ECDSA P-256/SHA-256 signature `r ‖ s`. */
  sign(
    privateKey: HsmKey,
    data: Uint8Array,
    options?: AcquireOptions,
  ): Promise<Uint8Array<ArrayBuffer>>;
  /** Verifies an ECDSA P-256/SHA-256 signature. */
  verify(
    publicKey: HsmKey,
    data: Uint8Array,
    signature: Uint8Array,
    options?: AcquireOptions,
  ): Promise<boolean>;
  /** SHA-256 computed by the HSM. */
  digest(data: Uint8Array, options?: AcquireOptions): Promise<Uint8Array<ArrayBuffer>>;
}

/** A member of a handle: its name and its own pool of sessions (for metrics). */
export interface HsmMember {
  /** The member's name (its pool is named `hsm:<name>`). */
  readonly name: string;
  /** The member's pool of sessions. */
  readonly pool: Pool<HsmSession>;
}

/** The key of the same `CKA_ID` and kind on `member`: a held key's handle is one token's. */
type KeyOn = (member: Member, key: HsmKey, deadline: Deadline | undefined) => Promise<HsmKey>;

let keysChecked: (hsm: Hsm) => Promise<void>;

/**
 * A pool of sessions on one token, or on each token of a group. Close it
 * (or `await using` it) when done. Each token is logged in while the handle
 * opens; a PIN a token refuses costs one `C_Login` there, and the handle
 * never sends it again (a handle on one token fails to open then).
 */
export class Hsm implements AsyncDisposable {
  /** The (first member's) pool, for events, resize and the rest of its API. */
  readonly pool: Pool<HsmSession>;
  /** Every member, each with its own pool (one for a handle on one token). */
  readonly members: readonly HsmMember[];
  /** Real path of the (first member's) module. */
  readonly library: string;
  /** The (first member's) token label. */
  readonly tokenLabel: string;
  /** Crypto on keys you hold, without a session callback. */
  readonly ops: HsmOps;
  readonly #group: Group;
  #closing: Promise<void> | undefined;

  static {
    keysChecked = (hsm) => hsm.#checkKeys();
  }

  /**
   * Opens the handle: loads and initialises each module (once per process),
   * finds each token and logs in. Prefer {@link openHsm}, which reports
   * every failure as a rejection and compares the members' keys.
   */
  constructor(options: OpenHsmOptions) {
    checkOptions(options);
    const group = this.#group = openGroup(options);
    this.members = group.seats.map(({ member: { name, pool } }) => ({ name, pool }));
    ({ pool: this.pool, library: this.library, tokenLabel: this.tokenLabel } = group.first);
    const single = group.seats.length === 1;
    // On one token a held key's handle is valid as it is; in a group each member finds its own.
    const keyOn: KeyOn = single ? (_, key) => Promise.resolve(key) : (m, key, deadline) => {
      if (key?.id === "" || typeof key?.id !== "string") return Promise.resolve(key);
      return m.keys.byId(key.id, key.kind, deadline);
    };
    type Use<T> = (session: HsmSession, key: HsmKey) => Promise<T>; // an op with a held key
    const held = <T>(key: HsmKey, options: AcquireOptions | undefined, fn: Use<T>) =>
      group.run(
        async (m, d) =>
          m.withKey(await keyOn(m, key, d), d, (k, d) => m.call((s) => fn(s, k), d, true)),
        deadlineOf(options),
        true,
      );
    this.ops = {
      encrypt: (key, plaintext, aad, o) => held(key, o, (s, k) => s.encrypt(k, plaintext, aad)),
      decrypt: (key, sealed, aad, o) => held(key, o, (s, k) => s.decrypt(k, sealed, aad)),
      sign: (key, data, o) => held(key, o, (s, k) => s.sign(k, data)),
      verify: (key, data, signature, o) => held(key, o, (s, k) => s.verify(k, data, signature)),
      digest: (data, o) =>
        group.run((m, d) => m.call((s) => s.digest(data), d, true), deadlineOf(o), true),
    };
  }

  /**
   * Runs `fn` with a pooled session and returns its result. `signal` and
   * `timeoutMs` bound the whole call: the wait for a session and the crypto
   * calls of `fn` that run on worker threads. When the token was logged out
   * behind the handle's back, it logs in again and runs `fn` once more. In
   * a group, `fn` runs on one member and is never run again on another
   * (it may have changed something): a failure of the member reaches you.
   */
  use<T>(
    fn: (session: HsmSession, signal: AbortSignal) => T | Promise<T>,
    options?: AcquireOptions,
  ): Promise<T> {
    return this.#group.run((m, d) => m.call(fn, d, false), deadlineOf(options), false);
  }

  /** Borrows a session (in a group: of the member with the fewest calls); release the lease. */
  acquire(options?: AcquireOptions): Promise<HsmLease> {
    return this.#group.run(
      (m, d) => {
        const refusal = m.refusal;
        if (refusal !== undefined) return Promise.reject(refusal);
        return m.pool.acquire(d).catch((error) => {
          throw m.refusal ?? error;
        });
      },
      deadlineOf(options),
      true,
    );
  }

  /**
   * AES-GCM with a random token key among those labelled `label` (so keys
   * can rotate), looked up through a short-lived cache (`keyCacheMs`).
   * Throws {@link KeyNotFoundError} when there is none, and an
   * {@link HsmError} when one has no `CKA_ID` (its ciphertexts could not be
   * decrypted later). A key that vanished is dropped from the cache and
   * another of the label is used. `signal` and `timeoutMs` bound the call.
   */
  encrypt(label: string, plaintext: Uint8Array, options?: SealOptions): Promise<Sealed> {
    const aad = options?.aad;
    return this.#group.run(
      async (m, deadline) => {
        for (let vanished = 0;; vanished++) {
          const keys = m.keys.cachedForLabel(label) ?? await m.keys.forLabel(label, deadline);
          const key = pickRandom(keys)!;
          try {
            const ciphertext = await m.call((s) => s.encrypt(key, plaintext, aad), deadline, true);
            return { ciphertext, keyId: key.id };
          } catch (error) {
            if (!isStaleHandle(error) || vanished >= keys.length) throw error;
            m.keys.forget(key);
          }
        }
      },
      deadlineOf(options),
      true,
    );
  }

  /**
   * AES-GCM decryption with the token key whose id {@link Hsm.encrypt}
   * returned; with `label`, only if that key carries it.
   */
  decrypt(
    keyId: string,
    ciphertext: Uint8Array,
    options?: DecryptOptions,
  ): Promise<Uint8Array<ArrayBuffer>> {
    const aad = options?.aad, label = options?.label;
    return this.#group.run(
      async (m, deadline) => {
        const key = await m.keys.byId(keyId, "aes", deadline);
        if (label !== undefined && key.label !== label) {
          throw new KeyNotFoundError(`id ${keyId} labelled ${JSON.stringify(label)}`);
        }
        return await m.withKey(
          key,
          deadline,
          (k, d) => m.call((s) => s.decrypt(k, ciphertext, aad), d, true),
        );
      },
      deadlineOf(options),
      true,
    );
  }

  /**
   * The members' state changes, from now until `signal` aborts, the stream
   * is returned (`break`) or the handle closes: `member-out` (with the
   * reason), `member-up`, `keys-missing`. Pool events are each member
   * pool's `events()`.
   */
  events(options?: { signal?: AbortSignal; bufferSize?: number }): AsyncIterableIterator<
    HsmMemberEvent
  > {
    return this.#group.events.subscribe(options?.bufferSize ?? 256, options?.signal);
  }

  /** Pool stats (summed over the members) plus the HSM's, and each member's. */
  stats(): HsmStats {
    const members = this.#group.seats.map(memberStats);
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

  /** Stops the probes, closes every session, lets go of the logins and modules. */
  close(options?: CloseOptions): Promise<void> {
    return this.#closing ??= this.#group.close(options);
  }

  /** Same as {@link Hsm.close}: for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Finds the keys each member lacks; with no key in common, a TypeError naming the members. */
  async #checkKeys(): Promise<void> {
    const seats = this.#group.seats.filter((s) => s.state === "up");
    if (this.#group.seats.length === 1) return;
    const common = await this.#group.checkKeys(seats);
    const lacking = seats.filter((s) => s.missingKeys.length > 0);
    if (common.size > 0 || lacking.length === 0) return;
    throw new TypeError(
      `openHsm: the members ${seats.map((s) => `"${s.member.name}"`).join(", ")} have no key ` +
        "in common (same CKA_ID, kind and label): clone the keys to every member with the " +
        "HSM's backup or cloning tools, or list only members that hold the same keys",
    );
  }
}

/** Opens each member and checks that they are distinct tokens; logs each in. */
function openGroup(options: OpenHsmOptions): Group {
  const configs = memberConfigs(options);
  const failover = failoverSettings(options.failover);
  const single = configs.length === 1;
  const settings = {
    pool: options.pool,
    keyCacheMs: options.keyCacheMs ?? 1000,
    callTimeoutMs: single ? undefined : failover.callTimeoutMs,
    keepLoginFailure: !single,
  };
  const members: Member[] = [];
  try {
    for (const [i, config] of configs.entries()) {
      try {
        members.push(new Member(config, settings));
      } catch (error) {
        throw single ? error : memberError(i, config, error);
      }
    }
    checkDistinct(members);
    if (!single) checkSomeLoggedIn(members);
  } catch (error) {
    for (const member of members) member.abandon();
    throw error;
  }
  const group = new Group(members, failover, (options as OpenHsmInternals)[CLOCK] ?? systemClock);
  for (const seat of group.seats) {
    const failure = seat.member.loginFailure;
    if (failure === undefined) continue;
    group.setOut(seat, (failure as Error).message, !isLoginRefusal(failure));
  }
  return group;
}

function memberError(i: number, config: MemberConfig, error: unknown): Error {
  const which = config.name ?? config.tokenLabel ?? `slot ${config.slotId}`;
  const message = `openHsm: member ${i} ("${which}") could not be opened: ${
    (error as Error)?.message ?? error
  }`;
  if (error instanceof TypeError) return new TypeError(message, { cause: error });
  return new HsmError(message, { operation: "open", cause: error });
}

function checkDistinct(members: readonly Member[]): void {
  for (let i = 0; i < members.length; i++) {
    for (let j = 0; j < i; j++) {
      const [a, b] = [members[j], members[i]];
      if (a.library === b.library && a.serial === b.serial) {
        throw new TypeError(
          `openHsm: members ${j} and ${i} are the same token ("${a.tokenLabel}", serial ` +
            `${a.serial}, in ${a.library}): list each token once`,
        );
      }
      if (a.name === b.name) {
        throw new TypeError(
          `openHsm: members ${j} and ${i} are both named "${a.name}": give each member a ` +
            "distinct name",
        );
      }
    }
  }
}

/** Throws when no member logged in: the first PIN refusal when every member refused. */
function checkSomeLoggedIn(members: readonly Member[]): void {
  if (members.some((m) => m.loginFailure === undefined)) return;
  const refusals = members.map((m) => m.loginFailure).filter(isLoginRefusal);
  if (refusals.length === members.length) throw refusals[0];
  throw new HsmError(
    "openHsm: no member could log in: " +
      members.map((m) => `"${m.name}": ${(m.loginFailure as Error)?.message}`).join("; "),
    { operation: "C_Login", cause: members[0].loginFailure },
  );
}

function memberStats(seat: Seat): HsmMemberStats {
  return {
    name: seat.member.name,
    state: seat.state,
    reason: seat.reason,
    inFlight: seat.inFlight,
    calls: seat.calls,
    errors: seat.errors,
    missingKeys: seat.missingKeys,
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

/**
 * Opens a handle on a token, or on a group of tokens (`members`): loads and
 * initialises each module (once per process), finds each token (by
 * `tokenLabel`, else `slotId`, else `PKCS11_TOKEN_LABEL`) and logs in. In a
 * group, a member that refuses its PIN or can not log in starts out of
 * rotation, and the members' keys are compared (`missingKeys` in stats);
 * members with no key in common fail. Every failure is a rejection (a
 * refused PIN on one token, or on every member: `PinRefusedError`, after
 * exactly one `C_Login` each), and releases whatever was opened.
 */
export async function openHsm(options: OpenHsmOptions): Promise<Hsm> {
  await Promise.resolve();
  const hsm = new Hsm(options);
  try {
    await keysChecked(hsm);
  } catch (error) {
    await hsm.close();
    throw error;
  }
  return hsm;
}

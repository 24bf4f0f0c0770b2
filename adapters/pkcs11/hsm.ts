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
import { rejectUnknownOptions } from "../../pool/options.ts";
import type { AcquireOptions, CloseOptions, EventsOptions } from "../../pool/types.ts";
import { isStaleHandle, KeyNotFoundError } from "./errors.ts";
import type { Group, HsmMemberEvent } from "./group.ts";
import { acquireOptions, deadlineOf, type Member } from "./member.ts";
import { openGroup } from "./open_group.ts";
import { type HsmKey, pickRandom } from "./ops.ts";
import { checkOptions, type OpenHsmOptions } from "./options.ts";
import type { HsmSession } from "./session.ts";
import { handleStats, type HsmStats } from "./stats.ts";
import type { Deadline } from "./threads.ts";

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

const EVENTS_OPTIONS: readonly (keyof EventsOptions)[] = ["signal", "bufferSize"];

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
        return m.pool.acquire(acquireOptions(d)).catch((error) => {
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
  events(options?: EventsOptions): AsyncIterableIterator<HsmMemberEvent> {
    if (options !== undefined) rejectUnknownOptions("Hsm.events()", options, EVENTS_OPTIONS);
    const bufferSize = options?.bufferSize ?? 256;
    if (!Number.isInteger(bufferSize) || bufferSize < 1) {
      throw new RangeError(
        `Hsm.events(): bufferSize must be a whole number of 1 or more, got ${bufferSize}`,
      );
    }
    return this.#group.events.subscribe(bufferSize, options?.signal);
  }

  /** Pool stats (summed over the members) plus the HSM's, and each member's. */
  stats(): HsmStats {
    return handleStats(this.#group.seats);
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

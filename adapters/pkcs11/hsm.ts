/**
 * {@link Hsm}: a pool of PKCS#11 sessions on one token, opened with
 * {@link openHsm}, and its one call path: take a session, run the
 * operation, put the session back ({@link Hsm.use}); on the way back,
 * recover from what the module said (a session closed behind our back, a
 * token logged out, a module finalised by someone else) and run the
 * operation once more where that is safe.
 *
 * @module
 */
import type { Buffer } from "node:buffer";
import { type Lease, Pool } from "../../mod.ts";
import type { AcquireOptions, CloseOptions, PoolStats } from "../../pool/types.ts";
import {
  CKR,
  errorCode,
  HsmError,
  isLoginRefusal,
  isSessionFatal,
  isSessionGone,
  isStaleHandle,
  KeyNotFoundError,
  TOKEN_GONE_CODES,
} from "./errors.ts";
import { KeyCache } from "./key_cache.ts";
import { acquireModule, type ModuleRef } from "./module.ts";
import { type HsmKey, pickRandom } from "./ops.ts";
import { checkOptions, type OpenHsmOptions } from "./options.ts";
import { type HsmSession, Session } from "./session.ts";
import { CallPlace, type Deadline } from "./threads.ts";
import { HandleLogin, pickSlot, slotNumber, TokenLogin } from "./token.ts";

/** {@link PoolStats} plus what the HSM handle knows. */
export interface HsmStats extends PoolStats {
  /** Real path of the module. */
  library: string;
  /** The token's label. */
  tokenLabel: string;
  /** The slot the token is in now. */
  slotId: number;
  /** Where crypto calls run: this thread while the module is fast, else worker threads. */
  calls: "this thread" | "worker threads";
  /** `C_Login` calls on this token since it was opened in this process (all handles). */
  loginAttempts: number;
  /** Logins again after the token was logged out behind this handle's back. */
  relogins: number;
  /** Times the module was initialised again after someone else finalised it. */
  reinitialisations: number;
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

/** How a failed call was recovered from, so it may run once more. */
type Recovery = "session" | "login" | "module";

const NEVER_ABORTED = new AbortController().signal;

/** The deadline of a call that began now, or `undefined` when the caller set none. */
function deadlineOf(options: AcquireOptions | undefined): Deadline | undefined {
  if (options?.signal === undefined && options?.timeoutMs === undefined) return undefined;
  const { signal, timeoutMs } = options;
  return {
    signal,
    timeoutMs,
    until: timeoutMs === undefined ? undefined : performance.now() + timeoutMs,
  };
}

/** What is left of `deadline` for a wait for a session. */
function acquireOptions(deadline: Deadline | undefined): AcquireOptions | undefined {
  if (deadline?.until === undefined) return deadline;
  return {
    signal: deadline.signal,
    timeoutMs: Math.max(0, Math.round(deadline.until - performance.now())),
  };
}

/**
 * One member of a handle: a module, one token on it with its login, a pool
 * of its sessions, where their calls run and the keys found on it; and the
 * call path over them, with its recovery. A handle has one member.
 */
class Member {
  readonly pool: Pool<HsmSession>;
  readonly library: string;
  readonly tokenLabel: string;
  readonly keys: KeyCache;
  readonly #module: ModuleRef;
  readonly #login: HandleLogin;
  readonly #slot: Buffer;
  readonly #place = new CallPlace();
  #relogins = 0;

  /** Loads and initialises the module (once per process), finds the token and logs in. */
  constructor(options: OpenHsmOptions) {
    const moduleRef = acquireModule(options.library);
    const module = moduleRef.module;
    let token: TokenLogin | undefined;
    try {
      const { slot, label } = pickSlot(module, options);
      token = TokenLogin.acquire(module, slot);
      const login = this.#login = new HandleLogin(token, options.pin, label);
      login.ensure();
      this.#slot = slot;
      this.tokenLabel = label;
      this.keys = new KeyCache(
        (fn, deadline) => this.call(fn, deadline, true),
        options.keyCacheMs ?? 1000,
        () => login.token.generation,
      );
      const hooks = { place: this.#place, keyDestroyed: (key: HsmKey) => this.keys.forget(key) };
      this.pool = new Pool<HsmSession>({
        name: `hsm:${label}`,
        max: 4,
        // Validate only a session idle for a second (HikariCP's alive-bypass window): a
        // session that died while busy is caught by isFatal, and the call runs again.
        validateAfterMs: 1000,
        ...options.pool,
        create: () => {
          module.recover(); // finalised by someone else: initialise it again
          login.ensure();
          return Promise.resolve(new Session(module, slot, hooks));
        },
        destroy: async (session) => {
          await this.#place.busy(session); // never close a session under a running call
          (session as Session).close();
        },
        validate: (session) => {
          if (session.isLoggedIn()) return true;
          try {
            session.info();
          } catch {
            return false; // closed behind our back: the pool makes another
          }
          login.ensure(); // alive but logged out: log the token in again
          return session.isLoggedIn();
        },
        isFatal: isSessionFatal,
        isPermanent: isLoginRefusal,
      });
    } catch (error) {
      token?.release();
      moduleRef.release();
      throw error;
    }
    this.#module = moduleRef;
    this.library = module.path;
  }

  /**
   * The call path. `repeatable`: `fn` may run again on a fresh session
   * after its session was closed behind the pool's back (crypto and
   * lookups are; a callback of the user's may not be).
   */
  async call<T>(
    fn: (session: HsmSession, signal: AbortSignal) => T | Promise<T>,
    deadline: Deadline | undefined,
    repeatable: boolean,
  ): Promise<T> {
    for (let attempt = 0;; attempt++) {
      if (this.#login.refusal !== undefined) throw this.#login.refusal;
      let lease: Lease<HsmSession>;
      try {
        lease = await this.pool.acquire(acquireOptions(deadline));
      } catch (error) {
        throw this.#login.refusal ?? error;
      }
      const session = lease.resource;
      if (deadline !== undefined) this.#place.bound(session, deadline);
      try {
        const value = await fn(session, deadline?.signal ?? NEVER_ABORTED);
        this.#giveBack(lease, false);
        return value;
      } catch (error) {
        this.#giveBack(lease, isSessionFatal(error));
        const recovered = this.#recover(error);
        const again = recovered === "login" || (recovered !== undefined && repeatable);
        if (attempt > 0 || !again) throw this.#login.refusal ?? error;
      }
    }
  }

  /** Returns the session, or destroys it; one whose call is stuck on a thread once it answers. */
  #giveBack(lease: Lease<HsmSession>, fatal: boolean): void {
    const session = lease.resource;
    this.#place.bound(session, undefined);
    const busy = this.#place.busy(session);
    const end = () => void (fatal ? lease.destroy("session-fatal error") : lease.release());
    if (busy === undefined) end();
    else busy.then(end);
  }

  /**
   * After a failed call: what the module said, repaired where it can be.
   * A module finalised by someone else is initialised again; a session
   * closed behind our back means the others were likely closed with it (the
   * pool makes new ones); a token logged out behind our back is logged in
   * again (private keys vanish from view then, so a lookup that found
   * nothing or an invalid key handle can mean the same), never with a PIN
   * the token refused.
   */
  #recover(error: unknown): Recovery | undefined {
    if (this.#login.refusal !== undefined) return undefined;
    const code = errorCode(error);
    if (code === CKR.CRYPTOKI_NOT_INITIALIZED) {
      this.#module.module.recover();
      this.pool.invalidate();
      return "module";
    }
    if (isSessionGone(error)) {
      this.pool.invalidate();
      return "session";
    }
    if (code !== undefined && TOKEN_GONE_CODES.has(code)) {
      this.pool.invalidate();
      return undefined;
    }
    const loggedOut = code === CKR.USER_NOT_LOGGED_IN ||
      ((error instanceof KeyNotFoundError || isStaleHandle(error)) &&
        !this.#login.token.isLoggedIn());
    if (!loggedOut) return undefined;
    this.#login.ensure();
    this.#relogins++;
    return "login";
  }

  /** Whether the token refused this handle's PIN: then every call rejects with this at once. */
  get refusal(): HsmError | undefined {
    return this.#login.refusal;
  }

  /**
   * Runs `run` with a held key; when its handle turns out stale, the key is
   * found again by its `CKA_ID` and `run` runs once more with it.
   */
  async withKey<T>(
    key: HsmKey,
    deadline: Deadline | undefined,
    run: (key: HsmKey, deadline: Deadline | undefined) => Promise<T>,
  ): Promise<T> {
    try {
      return await run(key, deadline);
    } catch (error) {
      if (!isStaleHandle(error) || this.#login.refusal !== undefined) throw error;
      return await run(await this.#refind(key, deadline), deadline);
    }
  }

  async #refind(key: HsmKey, deadline: Deadline | undefined): Promise<HsmKey> {
    this.keys.forget(key);
    const stale = `the handle of ${key.kind} key "${key.label}" is no longer valid ` +
      "(the token was logged in again, or the key was destroyed)";
    if (key.id === "") {
      throw new HsmError(
        `${stale} and it has no CKA_ID to find it again by: look it up again with hsm.use()`,
        { operation: "findKey" },
      );
    }
    try {
      return await this.keys.byId(key.id, key.kind, deadline);
    } catch (error) {
      if (!(error instanceof KeyNotFoundError)) throw error;
      throw new KeyNotFoundError(`id ${key.id} (${stale}; session objects die with their session)`);
    }
  }

  /** Pool stats plus the member's. */
  stats(): HsmStats {
    return {
      ...this.pool.stats(),
      library: this.library,
      tokenLabel: this.tokenLabel,
      slotId: slotNumber(this.#slot),
      calls: this.#place.where,
      loginAttempts: this.#login.token.loginAttempts,
      relogins: this.#relogins,
      reinitialisations: this.#module.module.reinitialisations,
    };
  }

  /** Closes every session, lets go of the login and the module. */
  async close(options?: CloseOptions): Promise<void> {
    try {
      await this.pool.close(options);
    } finally {
      this.#login.token.release();
      this.#module.release();
    }
  }
}

/**
 * A pool of sessions on one token. Close it (or `await using` it) when
 * done. The token is logged in while the handle opens; a PIN it refuses
 * fails {@link openHsm}, and the handle never sends that PIN again.
 */
export class Hsm implements AsyncDisposable {
  /** The underlying pool, for events, resize and the rest of its API. */
  readonly pool: Pool<HsmSession>;
  /** Real path of the module. */
  readonly library: string;
  /** The token's label. */
  readonly tokenLabel: string;
  /** Crypto on keys you hold, without a session callback. */
  readonly ops: HsmOps;
  readonly #member: Member;
  #closing: Promise<void> | undefined;

  /**
   * Opens the handle: loads and initialises the module (once per process),
   * finds the token and logs in. Prefer {@link openHsm}, which reports every
   * failure as a rejection.
   */
  constructor(options: OpenHsmOptions) {
    checkOptions(options);
    const m = this.#member = new Member(options);
    ({ pool: this.pool, library: this.library, tokenLabel: this.tokenLabel } = m);
    type Use<T> = (session: HsmSession, key: HsmKey) => Promise<T>; // an op with a held key
    const held = <T>(key: HsmKey, options: AcquireOptions | undefined, fn: Use<T>) =>
      m.withKey(key, deadlineOf(options), (k, d) => m.call((s) => fn(s, k), d, true));
    this.ops = {
      encrypt: (key, plaintext, aad, o) => held(key, o, (s, k) => s.encrypt(k, plaintext, aad)),
      decrypt: (key, sealed, aad, o) => held(key, o, (s, k) => s.decrypt(k, sealed, aad)),
      sign: (key, data, o) => held(key, o, (s, k) => s.sign(k, data)),
      verify: (key, data, signature, o) => held(key, o, (s, k) => s.verify(k, data, signature)),
      digest: (data, o) => m.call((s) => s.digest(data), deadlineOf(o), true),
    };
  }

  /**
   * Runs `fn` with a pooled session and returns its result. `signal` and
   * `timeoutMs` bound the whole call: the wait for a session and the crypto
   * calls of `fn` that run on worker threads. When the token was logged out
   * behind the handle's back, it logs in again and runs `fn` once more.
   */
  use<T>(
    fn: (session: HsmSession, signal: AbortSignal) => T | Promise<T>,
    options?: AcquireOptions,
  ): Promise<T> {
    return this.#member.call(fn, deadlineOf(options), false);
  }

  /** Borrows a session; release the lease (or `await using` it). */
  acquire(options?: AcquireOptions): Promise<HsmLease> {
    const refusal = this.#member.refusal;
    if (refusal !== undefined) return Promise.reject(refusal);
    return this.pool.acquire(options).catch((error) => {
      throw this.#member.refusal ?? error;
    });
  }

  /**
   * AES-GCM with a random token key among those labelled `label` (so keys
   * can rotate), looked up through a short-lived cache (`keyCacheMs`).
   * Throws {@link KeyNotFoundError} when there is none, and an
   * {@link HsmError} when one has no `CKA_ID` (its ciphertexts could not be
   * decrypted later). A key that vanished is dropped from the cache and
   * another of the label is used. `signal` and `timeoutMs` bound the call.
   */
  async encrypt(label: string, plaintext: Uint8Array, options?: SealOptions): Promise<Sealed> {
    const m = this.#member, deadline = deadlineOf(options), aad = options?.aad;
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
  }

  /**
   * AES-GCM decryption with the token key whose id {@link Hsm.encrypt}
   * returned; with `label`, only if that key carries it.
   */
  async decrypt(
    keyId: string,
    ciphertext: Uint8Array,
    options?: DecryptOptions,
  ): Promise<Uint8Array<ArrayBuffer>> {
    const m = this.#member, deadline = deadlineOf(options), aad = options?.aad;
    const key = await m.keys.byId(keyId, "aes", deadline);
    const label = options?.label;
    if (label !== undefined && key.label !== label) {
      throw new KeyNotFoundError(`id ${keyId} labelled ${JSON.stringify(label)}`);
    }
    return await m.withKey(
      key,
      deadline,
      (k, d) => m.call((s) => s.decrypt(k, ciphertext, aad), d, true),
    );
  }

  /** Pool stats plus the HSM's. */
  stats(): HsmStats {
    return this.#member.stats();
  }

  /** Closes every session, lets go of the login and the module (finalised by the last user). */
  close(options?: CloseOptions): Promise<void> {
    return this.#closing ??= this.#member.close(options);
  }

  /** Same as {@link Hsm.close}: for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Opens a pool of sessions on a token: loads and initialises the module
 * (once per process), finds the token (by `tokenLabel`, else `slotId`, else
 * `PKCS11_TOKEN_LABEL`) and logs in. Every failure is a rejection (a
 * refused PIN: `PinRefusedError`, after exactly one `C_Login`), and
 * releases whatever was opened.
 */
export async function openHsm(options: OpenHsmOptions): Promise<Hsm> {
  await Promise.resolve();
  return new Hsm(options);
}

/**
 * {@link Hsm}: a pool of PKCS#11 sessions on one token, opened with
 * {@link openHsm}.
 *
 * ```ts
 * await using hsm = await openHsm({ tokenLabel: "TestToken", pin: Deno.env.get("PKCS11_PIN")! });
 * const { ciphertext, keyId } = await hsm.encrypt("app", data);
 * ```
 *
 * @module
 */
import type { Buffer } from "node:buffer";
import { Pool, PoolClosedError } from "../../mod.ts";
import type { AcquireOptions, CloseOptions, PoolStats } from "../../pool/types.ts";
import { CKR } from "./ckr.ts";
import type { CryptoEngine } from "./engine.ts";
import {
  errorCode,
  HsmError,
  isLoginRefusal,
  isSessionFatal,
  KeyNotFoundError,
  TOKEN_GONE_CODES,
} from "./errors.ts";
import { KeyCache } from "./key_cache.ts";
import { type HsmKey, pickRandom } from "./keys.ts";
import { HandleLogin, TokenLogin } from "./login.ts";
import { type HsmOps, Ops } from "./ops.ts";
import { checkOptions, makeEngine, type OpenHsmOptions } from "./options.ts";
import { acquireModule, type ModuleRef } from "./registry.ts";
import { HsmSession } from "./session.ts";
import { pickSlot, slotNumber } from "./token.ts";

/** {@link PoolStats} plus what the HSM handle knows. */
export interface HsmStats extends PoolStats {
  /** Real path of the module. */
  library: string;
  /** The token's label. */
  tokenLabel: string;
  /** The slot the token is in now. */
  slotId: number;
  /** The crypto engine's name. */
  engine: string;
  /** `C_Login` calls on this token since it was opened in this process (all handles). */
  loginAttempts: number;
  /** Re-logins after `CKR_USER_NOT_LOGGED_IN`. */
  relogins: number;
}

/** The result of {@link Hsm.encrypt}: the sealed bytes and the key that sealed them. */
export interface Sealed {
  /** `IV ‖ ciphertext ‖ tag`. */
  ciphertext: Uint8Array<ArrayBuffer>;
  /** The key's `CKA_ID` as hex: pass it to {@link Hsm.decrypt}. */
  keyId: string;
}

/** Options of {@link Hsm.encrypt} and {@link Hsm.decrypt}: the wait's bounds, and the AAD. */
export interface SealOptions extends AcquireOptions {
  /** Additional authenticated data: the same bytes must be given to decrypt. */
  aad?: Uint8Array;
}

/** A lease of one session (the pool's `Lease<HsmSession>`). */
export type HsmLease = Awaited<ReturnType<Pool<HsmSession>["acquire"]>>;

/** Where the session pool's hooks come from. */
interface SessionSource {
  module: ModuleRef["module"];
  slot: Buffer;
  login: HandleLogin;
  engine: () => CryptoEngine;
  settled: (session: HsmSession) => Promise<void>;
}

function sessionPool(name: string, options: OpenHsmOptions, src: SessionSource): Pool<HsmSession> {
  return new Pool<HsmSession>({
    name,
    max: 4,
    // Validate only a session idle for a second (HikariCP's alive-bypass window): under load a
    // C_GetSessionInfo per acquire waits on SoftHSM's locks; a session that died while busy is
    // caught by isFatal, and the ops run again on another (ops.ts).
    validateAfterMs: 1000,
    ...options.pool,
    // Synchronous up to C_Login: creates started together see the first one's refusal.
    create: () => {
      src.login.ensure();
      // A microtask later: with `min`, the pool creates from its constructor, before the engine is set.
      return Promise.resolve().then(() => new HsmSession(src.module, src.slot, src.engine()));
    },
    destroy: async (session) => {
      await src.settled(session); // never close a session a worker still runs a call on
      session.close();
    },
    validate: (session) => {
      if (session.isLoggedIn()) return true;
      if (session.closed) return false;
      try {
        session.info();
      } catch {
        return false; // closed behind our back: the pool makes another
      }
      src.login.ensure(); // alive but logged out: log the token in again
      return session.isLoggedIn();
    },
    isFatal: (error) => isSessionFatal(error),
    isPermanent: isLoginRefusal,
  });
}

/**
 * A pool of sessions on one token. Close it (or `await using` it) when
 * done. Once the token refused this handle's PIN, every call rejects at
 * once with that `PinRefusedError` (or `PinMismatchError`), and the handle
 * never calls `C_Login` again: open a new one with the right PIN.
 */
export class Hsm implements AsyncDisposable {
  /** The underlying pool, for events, resize and the rest of its API. */
  readonly pool: Pool<HsmSession>;
  /** Real path of the module. */
  readonly library: string;
  /** The token's label. */
  readonly tokenLabel: string;
  /**
   * Crypto on keys you hold, without a session callback: the fast path
   * (batched on the `"workers"` engine). A held key whose handle went stale
   * after a re-login is found again by its `CKA_ID`.
   */
  readonly ops: HsmOps;
  readonly #ops: Ops;
  readonly #login: HandleLogin;
  readonly #engine: CryptoEngine;
  readonly #keys: KeyCache;
  readonly #slot: Buffer;
  readonly #moduleRef: ModuleRef;
  readonly #closeEngine: (() => Promise<void>) | undefined;
  #relogins = 0;
  #closing: Promise<void> | undefined;

  /**
   * Opens the handle: loads and initialises the module (once per process)
   * and finds the token; the login happens with the first session. Prefer
   * {@link openHsm}, which reports every failure as a rejection. Throws a
   * `PinMismatchError` when the token is logged in with another PIN.
   */
  constructor(options: OpenHsmOptions) {
    checkOptions(options);
    const moduleRef = acquireModule(options.library);
    let token: TokenLogin | undefined;
    try {
      const { slot, label } = pickSlot(moduleRef.module, options);
      token = TokenLogin.acquire(moduleRef.module, slot);
      this.#login = new HandleLogin(token, options.pin, label);
      this.pool = sessionPool(`hsm:${label}`, options, {
        module: moduleRef.module,
        slot,
        login: this.#login,
        engine: () => this.#engine,
        settled: (session) => this.#engine.settled?.(session) ?? Promise.resolve(),
      });
      this.#slot = slot;
      this.tokenLabel = label;
    } catch (error) {
      token?.release();
      moduleRef.release();
      throw error;
    }
    this.#moduleRef = moduleRef;
    this.library = moduleRef.module.path;
    // Last: the only step that starts threads, after every step that can fail.
    ({ engine: this.#engine, close: this.#closeEngine } = makeEngine(options, this.library));
    const use = <T>(fn: (s: HsmSession) => T | Promise<T>, o?: AcquireOptions) => this.use(fn, o);
    const login = this.#login;
    this.#keys = new KeyCache(use, options.keyCacheMs ?? 1000, () => login.token.generation);
    const refind = (key: HsmKey, o?: AcquireOptions) => this.#refind(key, o);
    this.ops = this.#ops = new Ops(this.pool, this.#engine, use, refind, () => login.refusal);
  }

  /**
   * Runs `fn` with a pooled session and returns its result. On
   * `CKR_USER_NOT_LOGGED_IN` it logs in again and runs `fn` once more, so
   * `fn` should be safe to repeat (crypto operations are).
   */
  async use<T>(
    fn: (session: HsmSession, signal: AbortSignal) => T | Promise<T>,
    options?: AcquireOptions,
  ): Promise<T> {
    if (this.#login.refusal !== undefined) throw this.#login.refusal;
    try {
      return await this.pool.use(fn, options);
    } catch (error) {
      if (!this.#recover(error)) throw this.#login.refusal ?? error;
      return await this.pool.use(fn, options);
    }
  }

  /**
   * After a failed `use`: invalidates the pool when the token is gone, and
   * logs in again (returning `true`: run it once more) when the token was
   * logged out behind our back (someone's `C_Logout`, or the token's last
   * session closed): private keys vanish from view then, so a missing key
   * or an invalid key handle can mean the same thing.
   */
  #recover(error: unknown): boolean {
    if (this.#login.refusal !== undefined) return false;
    const code = errorCode(error);
    if (code !== undefined && TOKEN_GONE_CODES.has(code)) this.pool.invalidate();
    const loggedOut = code === CKR.USER_NOT_LOGGED_IN ||
      ((error instanceof KeyNotFoundError || code === CKR.KEY_HANDLE_INVALID ||
        code === CKR.OBJECT_HANDLE_INVALID) && !this.#login.token.isLoggedIn());
    if (!loggedOut) return false;
    this.#login.ensure();
    this.#relogins++;
    return true;
  }

  /** Borrows a session; release the lease (or `await using` it). */
  acquire(options?: AcquireOptions): Promise<HsmLease> {
    if (this.#login.refusal !== undefined) return Promise.reject(this.#login.refusal);
    return this.pool.acquire(options).catch((error) => {
      throw this.#login.refusal ?? error;
    });
  }

  /**
   * AES-GCM with a random token key among those labelled `label` (so keys
   * can rotate), looked up through a short-lived cache (`keyCacheMs`): the
   * adapter's fastest path. Throws {@link KeyNotFoundError} when there is
   * none, and an {@link HsmError} when one has no `CKA_ID` (its ciphertexts
   * could not be decrypted later). `signal` and `timeoutMs` bound the whole
   * call's waits for a session.
   */
  async encrypt(label: string, plaintext: Uint8Array, options?: SealOptions): Promise<Sealed> {
    if (this.#login.refusal !== undefined) throw this.#login.refusal;
    let keys = this.#keys.cachedForLabel(label);
    let rest = options;
    if (keys === undefined) {
      const started = performance.now();
      keys = await this.#keys.forLabel(label, options);
      rest = remaining(options, started);
    }
    const key = pickRandom(keys)!;
    return {
      ciphertext: await this.#ops.encrypt(key, plaintext, options?.aad, rest),
      keyId: key.id,
    };
  }

  /** AES-GCM decryption with the token key whose id {@link Hsm.encrypt} returned. */
  async decrypt(
    keyId: string,
    ciphertext: Uint8Array,
    options?: SealOptions,
  ): Promise<Uint8Array<ArrayBuffer>> {
    if (this.#login.refusal !== undefined) throw this.#login.refusal;
    const started = performance.now();
    const key = await this.#keys.byId(keyId, "aes", options);
    return await this.#ops.decrypt(key, ciphertext, options?.aad, remaining(options, started));
  }

  /** A key whose handle went stale, found again by its `CKA_ID` (see {@link Hsm.ops}). */
  async #refind(key: HsmKey, options?: AcquireOptions): Promise<HsmKey> {
    this.#keys.forget(key);
    const stale = `the handle of ${key.kind} key "${key.label}" is no longer valid ` +
      "(the token was logged in again, or the key was destroyed)";
    if (key.id === "") {
      throw new HsmError(
        `${stale} and it has no CKA_ID to find it again by: look it up again with hsm.use()`,
        { operation: "findKey" },
      );
    }
    try {
      return await this.#keys.byId(key.id, key.kind, options);
    } catch (error) {
      if (!(error instanceof KeyNotFoundError)) throw error;
      throw new KeyNotFoundError(`id ${key.id} (${stale}; session objects die with their session)`);
    }
  }

  /** Pool stats plus the HSM's. */
  stats(): HsmStats {
    return {
      ...this.pool.stats(),
      library: this.library,
      tokenLabel: this.tokenLabel,
      slotId: slotNumber(this.#slot),
      engine: this.#engine.name,
      loginAttempts: this.#login.token.loginAttempts,
      relogins: this.#relogins,
    };
  }

  /** Closes every session, lets go of the login and the module (finalised by the last user). */
  close(options?: CloseOptions): Promise<void> {
    return this.#closing ??= this.#close(options);
  }

  async #close(options?: CloseOptions): Promise<void> {
    try {
      this.#ops.close(new PoolClosedError(`Pool '${this.pool.name}' is closed`));
      await this.pool.close(options);
    } finally {
      try {
        await this.#closeEngine?.();
      } finally {
        this.#login.token.release();
        this.#moduleRef.release();
      }
    }
  }

  /** Same as {@link Hsm.close}: for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** `options` with what is left of its `timeoutMs` after the wait that began at `started`. */
function remaining(options: SealOptions | undefined, started: number): SealOptions | undefined {
  if (options?.timeoutMs === undefined) return options;
  return { ...options, timeoutMs: Math.max(0, options.timeoutMs - (performance.now() - started)) };
}

/**
 * Opens a pool of sessions on a token: loads and initialises the module
 * (once per process), finds the token (by `tokenLabel`, else `slotId`, else
 * `PKCS11_TOKEN_LABEL`) and logs in when the first session is made. Every
 * failure is a rejection, and releases whatever was opened.
 */
export async function openHsm(options: OpenHsmOptions): Promise<Hsm> {
  await Promise.resolve();
  return new Hsm(options);
}

/**
 * Opens the HSM described by the environment: `PKCS11_MODULE` (optional),
 * `PKCS11_TOKEN_LABEL` (default `TestToken`), `PKCS11_PIN` (required).
 * `overrides` win over the environment.
 */
export function openHsmFromEnv(overrides: Partial<OpenHsmOptions> = {}): Promise<Hsm> {
  const pin = overrides.pin ?? Deno.env.get("PKCS11_PIN");
  if (pin === undefined || pin === "") {
    return Promise.reject(new TypeError("PKCS11_PIN is not set: export the token's user PIN"));
  }
  const byEnv = overrides.slotId === undefined
    ? { tokenLabel: Deno.env.get("PKCS11_TOKEN_LABEL") ?? "TestToken" }
    : {};
  return openHsm({ ...byEnv, ...overrides, pin });
}

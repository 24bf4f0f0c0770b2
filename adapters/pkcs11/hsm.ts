/**
 * {@link openHsm}: a pool of PKCS#11 sessions on one token.
 *
 * ```ts
 * await using hsm = await openHsm({ tokenLabel: "TestToken", pin: Deno.env.get("PKCS11_PIN")! });
 * const sealed = await hsm.use(async (s) => s.encrypt(s.findRandomKey("app")!, data));
 * ```
 *
 * @module
 */
import type { Buffer } from "node:buffer";
import { Pool, PoolClosedError } from "../../mod.ts";
import type { AcquireOptions, CloseOptions, PoolOptions, PoolStats } from "../../pool/types.ts";
import type { CryptoEngine } from "./engine.ts";
import { asyncEngine, syncEngine } from "./engine_local.ts";
import { createWorkerEngine } from "./dispatch.ts";
import { KeyCache } from "./key_cache.ts";
import { createOps, type HsmOps } from "./ops.ts";
import { errorCode, HsmError, isSessionFatal, TOKEN_GONE_CODES } from "./errors.ts";
import type { HsmKey } from "./keys.ts";
import { acquireModule, type LoadedModule } from "./registry.ts";
import { HsmSession } from "./session.ts";
import { findSlotByLabel, slotNumber, TokenLogin } from "./token.ts";

const CKR_USER_NOT_LOGGED_IN = 0x101;
const CKR_KEY_HANDLE_INVALID = 0x60;
const CKR_OBJECT_HANDLE_INVALID = 0x82;
/** Return codes that, with the token found logged out, mean "log in again". */
const LOGGED_OUT_SYMPTOMS: ReadonlySet<number> = new Set([
  CKR_KEY_HANDLE_INVALID,
  CKR_OBJECT_HANDLE_INVALID,
]);

/** Pool settings for the sessions; the factory part is the adapter's. */
export type HsmPoolOptions = Omit<
  PoolOptions<HsmSession>,
  "create" | "destroy" | "validate" | "reset" | "isFatal"
>;

/** Options of {@link openHsm}. */
export interface OpenHsmOptions {
  /** Path of the PKCS#11 module. Default `PKCS11_MODULE`, then the usual SoftHSM2 locations. */
  library?: string;
  /** Label of the token. Default `PKCS11_TOKEN_LABEL`. Preferred over `slotId`: slot ids change. */
  tokenLabel?: string;
  /** Slot id, when there is no label to go by. */
  slotId?: number;
  /** The user PIN. Never appears in errors, logs or stats. */
  pin: string;
  /** Pool sizing and timing (`max` default 4). */
  pool?: HsmPoolOptions;
  /**
   * How crypto calls run: `"async"` (default: pkcs11js's `*Async` calls on
   * libuv's thread pool, the event loop stays free), `"workers"` (batches of
   * synchronous calls on Deno Workers, see `dispatch.ts`: the fastest under
   * concurrency), `"sync"` (on the calling thread: fastest for one caller,
   * but it blocks the event loop), or your own {@link CryptoEngine}.
   */
  engine?: "async" | "sync" | "workers" | CryptoEngine;
  /** Threads of the `"workers"` engine. Default: cores minus one, from 1 to 4. */
  workerThreads?: number;
  /**
   * How long {@link Hsm.encrypt} and {@link Hsm.decrypt} keep token keys
   * found by label or id, in ms (`C_FindObjects` costs more than the
   * crypto). A key added under a label is used within this time. Default
   * 1000; 0 looks keys up on every call.
   */
  keyCacheMs?: number;
}

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
  /** `C_Login` calls on this token since it was opened in this process. */
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

/** No key with the label or id: the HTTP service maps this to 404. */
export class KeyNotFoundError extends HsmError {
  /** Makes the error for a label or id that matched no key. */
  constructor(what: string) {
    super(`no AES key with ${what} on the token`, { operation: "findKey" });
    this.name = "KeyNotFoundError";
  }
}

/** A lease of one session (the pool's `Lease<HsmSession>`). */
export type HsmLease = Awaited<ReturnType<Pool<HsmSession>["acquire"]>>;

/** A pool of sessions on one token. Close it (or `await using` it) when done. */
export interface Hsm extends AsyncDisposable {
  /** The underlying pool, for events, resize and the rest of its API. */
  readonly pool: Pool<HsmSession>;
  /** Real path of the module. */
  readonly library: string;
  /** The token's label. */
  readonly tokenLabel: string;
  /**
   * Runs `fn` with a pooled session and returns its result. On
   * `CKR_USER_NOT_LOGGED_IN` it logs in again and runs `fn` once more, so
   * `fn` should be safe to repeat (crypto operations are).
   */
  use<T>(
    fn: (session: HsmSession, signal: AbortSignal) => T | Promise<T>,
    options?: AcquireOptions,
  ): Promise<T>;
  /** Borrows a session; release the lease (or `await using` it). */
  acquire(options?: AcquireOptions): Promise<HsmLease>;
  /**
   * Crypto on keys you hold, without a session callback: the fast path
   * (batched on the `"workers"` engine).
   */
  readonly ops: HsmOps;
  /**
   * AES-GCM with a random token key among those labelled `label` (so keys
   * can rotate), looked up through a short-lived cache (`keyCacheMs`).
   * Throws {@link KeyNotFoundError} when there is none.
   */
  encrypt(
    label: string,
    plaintext: Uint8Array,
    options?: AcquireOptions & { aad?: Uint8Array },
  ): Promise<Sealed>;
  /** AES-GCM decryption with the token key whose id {@link Hsm.encrypt} returned. */
  decrypt(
    keyId: string,
    ciphertext: Uint8Array,
    options?: AcquireOptions & { aad?: Uint8Array },
  ): Promise<Uint8Array<ArrayBuffer>>;
  /** Pool stats plus the HSM's. */
  stats(): HsmStats;
  /** Closes every session, lets go of the login and the module (finalised by the last user). */
  close(options?: CloseOptions): Promise<void>;
}

function pickSlot(module: LoadedModule, options: OpenHsmOptions): { slot: Buffer; label: string } {
  const label = options.tokenLabel ?? Deno.env.get("PKCS11_TOKEN_LABEL");
  if (label !== undefined && label !== "") {
    return { slot: findSlotByLabel(module, label), label };
  }
  if (options.slotId !== undefined) {
    for (const slot of module.pkcs11.C_GetSlotList(true)) {
      if (slotNumber(slot) === options.slotId) {
        return { slot, label: module.pkcs11.C_GetTokenInfo(slot).label.trim() };
      }
    }
    throw new HsmError(`no token in slot ${options.slotId} of ${module.path}`, {
      operation: "findSlot",
    });
  }
  throw new TypeError(
    "openHsm needs tokenLabel (or PKCS11_TOKEN_LABEL in the environment) or slotId",
  );
}

function checkEngine(engine: OpenHsmOptions["engine"]): void {
  if (engine === undefined || engine === "async" || engine === "sync" || engine === "workers") {
    return;
  }
  if (typeof engine === "object" && typeof engine.encrypt === "function") return;
  throw new TypeError(
    `engine must be "async", "sync", "workers" or a CryptoEngine, got ${String(engine)}`,
  );
}

/** The engine to use, and whether this handle owns it (and must close it). */
function makeEngine(
  options: OpenHsmOptions,
  library: string,
): [CryptoEngine, (() => Promise<void>)?] {
  const engine = options.engine;
  if (engine === undefined || engine === "async") return [asyncEngine];
  if (engine === "sync") return [syncEngine];
  if (engine === "workers") {
    const workers = createWorkerEngine({ library, threads: options.workerThreads });
    return [workers, () => workers.close()];
  }
  return [engine];
}

/**
 * Opens a pool of sessions on the token with this label. It loads and
 * initialises the module (once per process), finds the slot by label and
 * checks nothing else: the login happens when the first session is made, so
 * a wrong PIN shows up on the first `use()` as the cause of the pool's
 * error, and the pool's breaker stops further attempts.
 */
export async function openHsm(options: OpenHsmOptions): Promise<Hsm> {
  await Promise.resolve(); // every failure below is a rejection, never a synchronous throw
  if (typeof options?.pin !== "string" || options.pin === "") {
    throw new TypeError("openHsm needs a pin (for example from PKCS11_PIN)");
  }
  checkEngine(options.engine);
  const moduleRef = acquireModule(options.library);
  let login: TokenLogin;
  let label: string;
  let slot: Buffer;
  try {
    ({ slot, label } = pickSlot(moduleRef.module, options));
    login = TokenLogin.acquire(moduleRef.module, slot);
  } catch (error) {
    moduleRef.release();
    throw error;
  }
  const module = moduleRef.module;
  const pin = options.pin;
  const [engine, closeEngine] = makeEngine(options, module.path);
  let relogins = 0;

  const pool = new Pool<HsmSession>({
    name: `hsm:${label}`,
    max: 4,
    ...options.pool,
    create: () => {
      login.ensureLoggedIn(pin);
      return Promise.resolve(new HsmSession(module, slot, engine));
    },
    destroy: (session) => session.close(),
    validate: (session) => {
      if (session.isLoggedIn()) return true;
      if (session.closed) return false;
      try {
        session.info();
      } catch {
        return false; // closed behind our back: the pool makes another
      }
      login.ensureLoggedIn(pin); // alive but logged out: log the token in again
      return session.isLoggedIn();
    },
    isFatal: (error) => isSessionFatal(error),
  });

  const use = async <T>(
    fn: (session: HsmSession, signal: AbortSignal) => T | Promise<T>,
    acquireOptions?: AcquireOptions,
  ): Promise<T> => {
    try {
      return await pool.use(fn, acquireOptions);
    } catch (error) {
      const code = errorCode(error);
      if (code !== undefined && TOKEN_GONE_CODES.has(code)) pool.invalidate();
      // Logged out behind our back (someone's C_Logout, or the token's last
      // session closed): private keys vanish from view, so a missing key or
      // an invalid key handle can mean the same thing. Log in once and retry.
      const loggedOut = code === CKR_USER_NOT_LOGGED_IN ||
        ((error instanceof KeyNotFoundError || LOGGED_OUT_SYMPTOMS.has(code!)) &&
          !login.isLoggedIn());
      if (!loggedOut) throw error;
      login.ensureLoggedIn(pin);
      relogins++;
      return await pool.use(fn, acquireOptions);
    }
  };

  const ops = createOps(pool, engine, (fn) => use(fn));
  const keyCache = new KeyCache((fn) => use(fn), options.keyCacheMs ?? 1000);
  /** Runs `fn` with a looked-up key; a cached handle that went stale is looked up again once. */
  const withKey = async <T>(find: () => Promise<HsmKey>, fn: (key: HsmKey) => Promise<T>) => {
    const key = await find();
    try {
      return await fn(key);
    } catch (error) {
      const code = errorCode(error);
      if (code !== CKR_KEY_HANDLE_INVALID && code !== CKR_OBJECT_HANDLE_INVALID) throw error;
      keyCache.forget(key);
      return await fn(await find());
    }
  };

  let closing: Promise<void> | undefined;
  const close = (closeOptions?: CloseOptions): Promise<void> => {
    closing ??= (async () => {
      try {
        ops.close(new PoolClosedError(`pool "${pool.name}" is closed`));
        await pool.close(closeOptions);
      } finally {
        await closeEngine?.();
        login.release();
        moduleRef.release();
      }
    })();
    return closing;
  };

  const hsm: Hsm = {
    pool,
    library: module.path,
    tokenLabel: label,
    use,
    acquire: (acquireOptions) => pool.acquire(acquireOptions),
    ops: {
      encrypt: ops.encrypt,
      decrypt: ops.decrypt,
      sign: ops.sign,
      verify: ops.verify,
      digest: ops.digest,
    },
    encrypt: (keyLabel, plaintext, opts) =>
      withKey(async () => {
        const keys = await keyCache.byLabel(keyLabel);
        if (keys.length === 0) throw new KeyNotFoundError(`label "${keyLabel}"`);
        return keys[Math.floor(Math.random() * keys.length)];
      }, async (key) => ({
        ciphertext: await ops.encrypt(key, plaintext, opts?.aad),
        keyId: key.id,
      })),
    decrypt: (keyId, ciphertext, opts) =>
      withKey(async () => {
        const key = await keyCache.byId(keyId);
        if (key === undefined) throw new KeyNotFoundError(`id ${keyId}`);
        return key;
      }, (key) => ops.decrypt(key, ciphertext, opts?.aad)),
    stats: () => ({
      ...pool.stats(),
      library: module.path,
      tokenLabel: label,
      slotId: slotNumber(slot),
      engine: engine.name,
      loginAttempts: login.loginAttempts,
      relogins,
    }),
    close,
    [Symbol.asyncDispose]: () => close(),
  };
  return hsm;
}

/**
 * Opens the HSM described by the environment: `PKCS11_MODULE` (optional),
 * `PKCS11_TOKEN_LABEL` (default `TestToken`), `PKCS11_PIN` (required).
 */
export function openHsmFromEnv(overrides: Partial<OpenHsmOptions> = {}): Promise<Hsm> {
  const pin = overrides.pin ?? Deno.env.get("PKCS11_PIN");
  if (pin === undefined || pin === "") {
    return Promise.reject(new TypeError("PKCS11_PIN is not set: export the token's user PIN"));
  }
  return openHsm({
    tokenLabel: Deno.env.get("PKCS11_TOKEN_LABEL") ?? "TestToken",
    ...overrides,
    pin,
  });
}

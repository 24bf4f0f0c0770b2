/**
 * {@link Member}: one token of a handle (a module, the token on it with its
 * login, a pool of its sessions, where their calls run and the keys found
 * on it) and the call path over them: take a session, run the operation,
 * put the session back; on the way back, recover from what the module said
 * (a session closed behind our back, a token logged out, a module finalised
 * by someone else) and run the operation once more where that is safe.
 *
 * @module
 */
import type { Buffer } from "node:buffer";
import { type Lease, Pool, PoolTimeoutError } from "../../mod.ts";
import type { AcquireOptions, CloseOptions, PoolStats } from "../../pool/types.ts";
import {
  call as callModule,
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
import { type HsmKey, tokenKeyNames } from "./ops.ts";
import type { HsmPoolOptions, MemberConfig } from "./options.ts";
import { type HsmSession, Session } from "./session.ts";
import { CallPlace, type Deadline } from "./threads.ts";
import { HandleLogin, pickSlot, slotNumber, TokenLogin } from "./token.ts";

/** What one member knows of itself (its part of the handle's stats). */
export interface MemberStats {
  /** Its pool's numbers. */
  pool: PoolStats;
  /** Real path of the module. */
  library: string;
  /** The token's label. */
  tokenLabel: string;
  /** The slot the token is in now. */
  slotId: number;
  /** Where crypto calls run: this thread while the module is fast, else worker threads. */
  runsOn: "this thread" | "worker threads";
  /** `C_Login` calls on this token since it was opened in this process (all handles). */
  loginAttempts: number;
  /** Logins again after the token was logged out behind this handle's back. */
  relogins: number;
  /** Times the module was initialised again after someone else finalised it. */
  reinitialisations: number;
}

/** How a failed call was recovered from, so it may run once more. */
type Recovery = "session" | "login" | "module";

const NEVER_ABORTED = new AbortController().signal;
const PROBE_DATA = new Uint8Array(1);
const NO_SESSION = new Uint8Array(0);

const unanswered = new WeakSet<object>();

/** Whether `error` is a crypto call's timeout at the member's `callTimeoutMs` (not the caller's). */
export function isUnanswered(error: unknown): boolean {
  return typeof error === "object" && error !== null && unanswered.has(error);
}

/** The deadline of a call that began now, or `undefined` when the caller set none. */
export function deadlineOf(options: AcquireOptions | undefined): Deadline | undefined {
  if (options?.signal === undefined && options?.timeoutMs === undefined) return undefined;
  const { signal, timeoutMs } = options;
  return {
    signal,
    timeoutMs,
    until: timeoutMs === undefined ? undefined : performance.now() + timeoutMs,
  };
}

/** What is left of `deadline` for a wait for a session. */
export function acquireOptions(deadline: Deadline | undefined): AcquireOptions | undefined {
  if (deadline?.until === undefined) return deadline;
  return {
    signal: deadline.signal,
    timeoutMs: Math.max(0, Math.round(deadline.until - performance.now())),
  };
}

/** What a member is opened with besides its token. */
export interface MemberSettings {
  /** The member's sessions' pool settings. */
  pool?: HsmPoolOptions;
  /** How long its key cache keeps keys. */
  keyCacheMs: number;
  /** A crypto call not answered within this many ms ends with a `PoolTimeoutError` (groups). */
  callTimeoutMs?: number;
  /** Keep a failed first login in {@link Member.loginFailure} instead of throwing it (groups). */
  keepLoginFailure?: boolean;
}

/** One token of a handle, and the call path over it (see the module doc). */
export class Member {
  /** Its name: the given one, else the token label. */
  readonly name: string;
  readonly pool: Pool<HsmSession>;
  readonly library: string;
  readonly tokenLabel: string;
  /** The token's serial number, to tell two members on one token apart. */
  readonly serial: string;
  readonly keys: KeyCache;
  /** Why the first login failed, when the settings kept it instead of throwing it. */
  readonly loginFailure: unknown;
  readonly #module: ModuleRef;
  readonly #login: HandleLogin;
  readonly #slot: Buffer;
  readonly #place = new CallPlace();
  /** The owner of the probe's worker thread. */
  readonly #prober = {};
  readonly #callTimeoutMs: number | undefined;
  #relogins = 0;

  /** Loads and initialises the module (once per process), finds the token and logs in. */
  constructor(config: MemberConfig, settings: MemberSettings) {
    const moduleRef = acquireModule(config.library);
    const module = moduleRef.module;
    let token: TokenLogin | undefined;
    try {
      const { slot, label } = pickSlot(module, config);
      this.serial = callModule("C_GetTokenInfo", () => module.pkcs11.C_GetTokenInfo(slot))
        .serialNumber.trim();
      this.name = config.name ?? label;
      token = TokenLogin.acquire(module, slot);
      const login = this.#login = new HandleLogin(token, config.pin, label);
      try {
        login.ensure();
      } catch (error) {
        if (!settings.keepLoginFailure) throw error;
        this.loginFailure = error;
      }
      this.#slot = slot;
      this.tokenLabel = label;
      this.#callTimeoutMs = settings.callTimeoutMs;
      this.keys = new KeyCache(
        (fn, deadline) => this.call(fn, deadline, true),
        settings.keyCacheMs,
        () => login.token.generation,
      );
      const hooks = { place: this.#place, keyDestroyed: (key: HsmKey) => this.keys.forget(key) };
      this.pool = new Pool<HsmSession>({
        name: `hsm:${this.name}`,
        max: 4,
        // Validate only a session idle for a second (HikariCP's alive-bypass window): a
        // session that died while busy is caught by isFatal, and the call runs again.
        validateAfterMs: 1000,
        ...settings.pool,
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
      const bound = this.#bound(deadline);
      if (bound !== undefined) this.#place.bound(session, bound);
      try {
        const value = await fn(session, deadline?.signal ?? NEVER_ABORTED);
        this.#giveBack(lease, false);
        return value;
      } catch (error) {
        this.#giveBack(lease, isSessionFatal(error));
        // Tightened by callTimeoutMs, the bound ends before the caller's deadline: its timeout is
        // the member's not answering, never the caller's deadline.
        if (bound !== deadline && error instanceof PoolTimeoutError) unanswered.add(error);
        const recovered = this.#recover(error);
        const again = recovered === "login" || (recovered !== undefined && repeatable);
        if (attempt > 0 || !again) throw this.#login.refusal ?? error;
      }
    }
  }

  /** What bounds the crypto calls on a session: the caller's deadline, tightened by `callTimeoutMs`. */
  #bound(deadline: Deadline | undefined): Deadline | undefined {
    const limit = this.#callTimeoutMs;
    if (limit === undefined) return deadline;
    const until = performance.now() + limit;
    if (deadline?.until !== undefined && deadline.until <= until) return deadline;
    return { signal: deadline?.signal, timeoutMs: limit, until };
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

  /** Whether the token refused this member's PIN: then every call rejects with this at once. */
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

  /**
   * Whether the member serves again: the module initialised again if
   * someone finalised it, the token logged in (once), its old sessions
   * retired, and one crypto call (a digest) answered on a new session
   * within `deadline`. Throws what went wrong.
   */
  async probe(deadline: Deadline): Promise<void> {
    const module = this.#module.module;
    module.recover();
    // On a worker thread first: a module that still hangs must not block the event loop.
    await this.#place.runOnThread(this.#prober, {
      pkcs11: module.pkcs11,
      library: module.path,
      session: NO_SESSION,
      op: "ping",
      args: [this.#slot],
    }, deadline);
    this.pool.invalidate();
    this.#login.ensure();
    await this.call((s) => s.digest(PROBE_DATA), deadline, false);
  }

  /** Every token key on the member that has a `CKA_ID`, as `"<kind>:<id hex>:<label>"`. */
  keyNames(deadline: Deadline | undefined): Promise<Set<string>> {
    return this.call(
      (s) => {
        const names = new Set<string>();
        for (const kind of ["aes", "ec-private", "ec-public"] as const) {
          for (const name of tokenKeyNames(s.module.pkcs11, s.handle, kind)) {
            if (!name.startsWith(`${kind}::`)) names.add(name);
          }
        }
        return names;
      },
      deadline,
      true,
    );
  }

  /** Pool stats plus the member's. */
  stats(): MemberStats {
    return {
      pool: this.pool.stats(),
      library: this.library,
      tokenLabel: this.tokenLabel,
      slotId: slotNumber(this.#slot),
      runsOn: this.#place.where,
      loginAttempts: this.#login.token.loginAttempts,
      relogins: this.#relogins,
      reinitialisations: this.#module.module.reinitialisations,
    };
  }

  /**
   * Lets go of the login and the module at once, for a handle that failed
   * to open (its pool has lent nothing; its close finishes on its own).
   */
  abandon(): void {
    void this.pool.close();
    this.#place.forget(this.#prober);
    this.#login.token.release();
    this.#module.release();
  }

  /** Closes every session, lets go of the login and the module. */
  async close(options?: CloseOptions): Promise<void> {
    try {
      await this.pool.close(options);
    } finally {
      this.#place.forget(this.#prober);
      this.#login.token.release();
      this.#module.release();
    }
  }
}

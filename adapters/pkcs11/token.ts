/**
 * Finding a token by label, and keeping it logged in.
 *
 * Login state belongs to the token for the whole application, not to one
 * session, and SoftHSM logs the token out when its last session closes. So
 * each token gets one anchor session, shared by every handle on it and never
 * lent out: it carries the login, and idle eviction of pooled sessions can
 * never log everyone out. `C_Logout` is never called: the login ends when
 * the last anchor closes (or the module is finalised).
 *
 * @module
 */
import { HsmError, toHsmError } from "./errors.ts";
import { SessionHandle } from "./handle.ts";
import type { LoadedModule } from "./registry.ts";

const CKU_USER = 1;
const CKR_USER_ALREADY_LOGGED_IN = 0x100;

/**
 * The slot holding the token with this label. Slot ids are not stable
 * (SoftHSM renumbers them when a token is initialised), labels are.
 */
export function findSlotByLabel(module: LoadedModule, label: string): Buffer {
  let slots: Buffer[];
  try {
    slots = module.pkcs11.C_GetSlotList(true);
  } catch (error) {
    throw toHsmError(error, "C_GetSlotList");
  }
  const labels: string[] = [];
  for (const slot of slots) {
    const tokenLabel = module.pkcs11.C_GetTokenInfo(slot).label.trim();
    if (tokenLabel === label) return slot;
    labels.push(tokenLabel);
  }
  throw new HsmError(
    `no token labelled "${label}" in ${module.path} (tokens: ${
      labels.length ? labels.map((l) => `"${l}"`).join(", ") : "none"
    }); run \`deno task setup:hsm\` for the private test token, or check SOFTHSM2_CONF`,
    { operation: "findSlot" },
  );
}

/** A slot id as a number, for messages and stats. */
export function slotNumber(slot: Buffer): number {
  return Number(slot.length >= 8 ? slot.readBigUInt64LE(0) : BigInt(slot.readUInt32LE(0)));
}

/** The login of one token, carried by an anchor session. Get it with {@link tokenLogin}. */
export class TokenLogin {
  /** The module. */
  readonly module: LoadedModule;
  /** The token's slot. */
  readonly slot: Buffer;
  /** How many times `C_Login` was called on this token (the breaker test counts them). */
  loginAttempts = 0;
  #anchor: SessionHandle | undefined;
  #refs = 0;
  #key: string;

  private constructor(module: LoadedModule, slot: Buffer, key: string) {
    this.module = module;
    this.slot = slot;
    this.#key = key;
  }

  /** The shared login of a token, counted; `release()` it when done. */
  static acquire(module: LoadedModule, slot: Buffer): TokenLogin {
    const key = slot.toString("hex");
    let perModule = logins.get(module);
    if (perModule === undefined) logins.set(module, perModule = new Map());
    let login = perModule.get(key);
    if (login === undefined) perModule.set(key, login = new TokenLogin(module, slot, key));
    login.#refs++;
    return login;
  }

  /**
   * Makes sure the token is logged in as the user: a cheap check of the
   * anchor, else (re)open the anchor and `C_Login` on it.
   * `CKR_USER_ALREADY_LOGGED_IN` counts as success.
   */
  ensureLoggedIn(pin: string): void {
    if (this.#anchor?.isLoggedIn()) return;
    if (this.#anchor === undefined || this.#anchor.closed) {
      this.#anchor = new SessionHandle(this.module, this.slot);
    } else {
      try {
        this.#anchor.info();
      } catch {
        this.#anchor.markDead();
        this.#anchor = new SessionHandle(this.module, this.slot);
      }
    }
    this.loginAttempts++;
    try {
      this.module.pkcs11.C_Login(this.#anchor.handle, CKU_USER, pin);
    } catch (error) {
      const wrapped = toHsmError(error, "C_Login");
      if (wrapped.code !== CKR_USER_ALREADY_LOGGED_IN) throw wrapped;
    }
  }

  /** Whether the anchor session sees the token logged in (one `C_GetSessionInfo`). */
  isLoggedIn(): boolean {
    return this.#anchor?.isLoggedIn() ?? false;
  }

  /** Drops one reference; the last closes the anchor session. */
  release(): void {
    if (--this.#refs > 0) return;
    logins.get(this.module)?.delete(this.#key);
    this.#anchor?.close();
    this.#anchor = undefined;
  }
}

const logins = new WeakMap<LoadedModule, Map<string, TokenLogin>>();

/** Shorthand for {@link TokenLogin.acquire}. */
export function tokenLogin(module: LoadedModule, slot: Buffer): TokenLogin {
  return TokenLogin.acquire(module, slot);
}

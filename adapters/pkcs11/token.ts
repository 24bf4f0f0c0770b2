/**
 * The token: finding it (by label, which is stable, or by slot id, which
 * is not: SoftHSM renumbers slots when a token is initialised), and keeping
 * it logged in.
 *
 * Login state belongs to the token for the whole process, not to one
 * session, and SoftHSM logs the token out when its last session closes. So
 * each token gets one {@link TokenLogin}: an anchor session, shared by every
 * handle on the token and never lent out, carries the login, so idle
 * eviction of pooled sessions can never log everyone out. `C_Logout` is
 * never called: the login ends when the last anchor closes.
 *
 * Each handle has a {@link HandleLogin} with its PIN. A PIN the token
 * refuses is remembered there and never sent again (a real HSM locks the
 * PIN after a few wrong tries); and since a logged-in token would accept
 * any PIN (`CKR_USER_ALREADY_LOGGED_IN`), the token keeps a salted hash of
 * the PIN that logged it in and every other handle's PIN is compared with it.
 *
 * @module
 */
import type { Buffer } from "node:buffer";
import { createHmac, timingSafeEqual } from "node:crypto";
import {
  CKR,
  HsmError,
  isPinRefusalCode,
  PinMismatchError,
  PinRefusedError,
  toHsmError,
} from "./errors.ts";
import type { Module } from "./module.ts";
import { Session } from "./session.ts";

/**
 * The slot holding the token with this label. Slot ids are not stable
 * (SoftHSM renumbers them when a token is initialised), labels are.
 */
export function findSlotByLabel(module: Module, label: string): Buffer {
  let slots: Buffer[];
  try {
    slots = module.pkcs11.C_GetSlotList(true);
  } catch (error) {
    throw toHsmError(error, "C_GetSlotList");
  }
  const labels: string[] = [];
  let silent: HsmError | undefined; // a slot whose token did not answer (another HSM of a group)
  for (const slot of slots) {
    let tokenLabel: string;
    try {
      tokenLabel = module.pkcs11.C_GetTokenInfo(slot).label.trim();
    } catch (error) {
      silent ??= toHsmError(error, `C_GetTokenInfo of slot ${slotNumber(slot)}`);
      continue;
    }
    if (tokenLabel === label) return slot;
    labels.push(tokenLabel);
  }
  const known = labels.length ? labels.map((l) => `"${l}"`).join(", ") : "none";
  if (silent !== undefined) {
    throw new HsmError(
      `no token labelled "${label}" answered in ${module.path} (tokens: ${known}; ` +
        `${silent.message})`,
      { operation: "findSlot", code: silent.code, cause: silent },
    );
  }
  throw new HsmError(
    `no token labelled "${label}" in ${module.path} (tokens: ${known}); run ` +
      "`deno task setup:hsm` for the private test token, or check SOFTHSM2_CONF",
    { operation: "findSlot" },
  );
}

/** A slot id as a number, for messages and stats. */
export function slotNumber(slot: Buffer): number {
  return Number(slot.length >= 8 ? slot.readBigUInt64LE(0) : BigInt(slot.readUInt32LE(0)));
}

/** Where to find the token: explicit options first, then `PKCS11_TOKEN_LABEL`. */
export interface TokenChoice {
  /** Label of the token. */
  tokenLabel?: string;
  /** Slot id. */
  slotId?: number;
}

/**
 * The token's slot and label. Explicit options win over the environment:
 * `tokenLabel`, then `slotId`, then `PKCS11_TOKEN_LABEL`.
 */
export function pickSlot(
  module: Module,
  choice: TokenChoice,
): { slot: Buffer; label: string } {
  if (choice.tokenLabel !== undefined && choice.tokenLabel !== "") {
    return { slot: findSlotByLabel(module, choice.tokenLabel), label: choice.tokenLabel };
  }
  if (choice.slotId !== undefined) return findSlotById(module, choice.slotId);
  const label = Deno.env.get("PKCS11_TOKEN_LABEL");
  if (label !== undefined && label !== "") return { slot: findSlotByLabel(module, label), label };
  throw new TypeError(
    "openHsm needs tokenLabel or slotId (or PKCS11_TOKEN_LABEL in the environment)",
  );
}

function findSlotById(module: Module, slotId: number): { slot: Buffer; label: string } {
  for (const slot of module.pkcs11.C_GetSlotList(true)) {
    if (slotNumber(slot) === slotId) {
      return { slot, label: module.pkcs11.C_GetTokenInfo(slot).label.trim() };
    }
  }
  throw new HsmError(`no token in slot ${slotId} of ${module.path}`, { operation: "findSlot" });
}

const CKU_USER = 1;

/** The login of one token in this process. Get it with {@link TokenLogin.acquire}. */
export class TokenLogin {
  /** The module. */
  readonly module: Module;
  /** The token's slot. */
  readonly slot: Buffer;
  /** How many times `C_Login` was called on this token. */
  loginAttempts = 0;
  /**
   * Bumped by every successful `C_Login`: key handles found before may be
   * stale (SoftHSM renumbers private objects when it logs in again).
   */
  generation = 0;
  #anchor: Session | undefined;
  #refs = 0;
  readonly #key: string;
  /** Keys the HMAC of the PIN that logged the token in; never leaves this object. */
  readonly #salt = crypto.getRandomValues(new Uint8Array(32));
  #pinMac: Buffer | undefined;

  private constructor(module: Module, slot: Buffer, key: string) {
    this.module = module;
    this.slot = slot;
    this.#key = key;
  }

  /** The shared login of a token, counted; `release()` it when done. */
  static acquire(module: Module, slot: Buffer): TokenLogin {
    const key = slot.toString("hex");
    let perModule = logins.get(module);
    if (perModule === undefined) logins.set(module, perModule = new Map());
    let login = perModule.get(key);
    if (login === undefined) perModule.set(key, login = new TokenLogin(module, slot, key));
    login.#refs++;
    return login;
  }

  #mac(pin: string): Buffer {
    return createHmac("sha256", this.#salt).update(pin).digest();
  }

  /**
   * Whether `pin` may be used: `false` only when this process logged the
   * token in with another PIN and the token is still logged in.
   */
  acceptsPin(pin: string): boolean {
    if (this.#pinMac === undefined || !this.isLoggedIn()) return true;
    return timingSafeEqual(this.#pinMac, this.#mac(pin));
  }

  /**
   * Makes sure the token is logged in as the user: a cheap check of the
   * anchor, else (re)open the anchor and `C_Login` on it. Returns `false`
   * when the token is logged in with another PIN than `pin` (no call made).
   * Throws the wrapped `C_Login` error otherwise.
   */
  ensureLoggedIn(pin: string): boolean {
    if (this.isLoggedIn()) return this.acceptsPin(pin);
    this.#pinMac = undefined;
    const anchor = this.#freshAnchor();
    this.loginAttempts++;
    try {
      this.module.pkcs11.C_Login(anchor.handle, CKU_USER, pin);
    } catch (error) {
      const wrapped = toHsmError(error, "C_Login");
      // Logged in by another library of this process: its PIN is unknown to us.
      if (wrapped.code === CKR.USER_ALREADY_LOGGED_IN) return true;
      throw wrapped;
    }
    this.#pinMac = this.#mac(pin);
    this.generation++;
    return true;
  }

  #freshAnchor(): Session {
    if (this.#anchor !== undefined && !this.#anchor.closed) {
      try {
        this.#anchor.info();
        return this.#anchor;
      } catch {
        this.#anchor.markDead();
      }
    }
    return this.#anchor = new Session(this.module, this.slot);
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
    this.#pinMac = undefined;
  }
}

const logins = new WeakMap<Module, Map<string, TokenLogin>>();

/**
 * One handle's view of the token login: its PIN, and the refusal it got,
 * if any. Once refused, it fails at once with the saved error and never
 * calls `C_Login` again.
 */
export class HandleLogin {
  /** The token's shared login. */
  readonly token: TokenLogin;
  /** Why this handle may not log in (kept for the handle's life), or `undefined`. */
  refusal: HsmError | undefined;
  readonly #pin: string;
  readonly #tokenLabel: string;

  /** Throws a {@link PinMismatchError} when the token is logged in with another PIN. */
  constructor(token: TokenLogin, pin: string, tokenLabel: string) {
    this.token = token;
    this.#pin = pin;
    this.#tokenLabel = tokenLabel;
    if (!token.acceptsPin(pin)) throw new PinMismatchError(tokenLabel);
  }

  /** Logs the token in if it is not, with this handle's PIN; throws the refusal if refused. */
  ensure(): void {
    if (this.refusal !== undefined) throw this.refusal;
    let accepted: boolean;
    try {
      accepted = this.token.ensureLoggedIn(this.#pin);
    } catch (error) {
      const code = (error as HsmError).code;
      if (isPinRefusalCode(code)) throw this.refusal = new PinRefusedError(error as HsmError);
      throw error;
    }
    if (!accepted) throw this.refusal = new PinMismatchError(this.#tokenLabel);
  }
}

/**
 * Errors of the PKCS#11 adapter: every failure carries the operation
 * (`C_Login`, `aesGcmEncrypt`, ...) and, when the module returned one, the
 * CKR name and code. PINs never reach a message.
 *
 * @module
 */
import { CKR, ckrCode, ckrName } from "./ckr.ts";

/** What an {@link HsmError} is built from. */
export interface HsmErrorOptions {
  /** The PKCS#11 function or adapter operation that failed. */
  operation: string;
  /** The CK_RV return code, when the module returned one. */
  code?: number;
  /** The underlying error. */
  cause?: unknown;
}

/** A failure of the HSM or of the adapter, with the CKR name when there is one. */
export class HsmError extends Error {
  /** The PKCS#11 function or adapter operation that failed. */
  readonly operation: string;
  /** The CK_RV code, or `undefined` when the failure did not come from the module. */
  readonly code: number | undefined;
  /** The CKR name (`"CKR_PIN_INCORRECT"`), or `undefined`. */
  readonly ckr: string | undefined;

  /** Makes an error; prefer {@link toHsmError} to wrap what pkcs11js threw. */
  constructor(message: string, options: HsmErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "HsmError";
    this.operation = options.operation;
    this.code = options.code;
    this.ckr = options.code === undefined ? undefined : ckrName(options.code);
  }
}

/** No key with the label or id: the HTTP service maps this to 404. */
export class KeyNotFoundError extends HsmError {
  /** Makes the error for a label or id that matched no key. */
  constructor(what: string) {
    super(`no key with ${what} on the token`, { operation: "findKey" });
    this.name = "KeyNotFoundError";
  }
}

/** What to do about each PIN the token refuses. */
const PIN_REFUSALS: ReadonlyMap<number, string> = new Map([
  [CKR.PIN_INCORRECT, "the PIN is wrong: check PKCS11_PIN (the token's user PIN)"],
  [CKR.PIN_INVALID, "the PIN has characters the token does not accept: check PKCS11_PIN"],
  [CKR.PIN_LEN_RANGE, "the PIN is too short or too long for the token: check PKCS11_PIN"],
  [CKR.PIN_EXPIRED, "the PIN has expired: set a new one on the token first"],
  [CKR.PIN_LOCKED, "the user PIN is locked: the security officer must unlock it"],
]);

/** Whether `code` says the token refused the PIN (retrying the same PIN cannot help). */
export function isPinRefusalCode(code: number | undefined): boolean {
  return code !== undefined && PIN_REFUSALS.has(code);
}

/**
 * The token refused this handle's PIN. The handle never logs in again (each
 * wrong try counts towards locking the PIN on a real HSM): every call
 * fails at once with this error until a new handle is opened.
 */
export class PinRefusedError extends HsmError {
  /** Wraps the `C_Login` failure (an {@link HsmError} with a PIN refusal code). */
  constructor(login: HsmError) {
    const code = login.code!;
    super(
      `C_Login refused the PIN: ${ckrName(code)} (0x${code.toString(16)}): ` +
        `${PIN_REFUSALS.get(code)}, then open a new handle. This handle will not try the ` +
        "PIN again: each wrong try counts towards locking it",
      { operation: "C_Login", code, cause: login },
    );
    this.name = "PinRefusedError";
  }
}

/**
 * The token is already logged in (login state is per process and token)
 * with another PIN than this handle's: the handle refuses to work rather
 * than ride on someone else's login.
 */
export class PinMismatchError extends HsmError {
  /** Makes the error for the token with this label. */
  constructor(tokenLabel: string) {
    super(
      `the PIN given for token "${tokenLabel}" is not the one it was logged in with ` +
        "in this process (by another handle): check PKCS11_PIN, then open a new handle",
      { operation: "C_Login" },
    );
    this.name = "PinMismatchError";
  }
}

/** Whether a pool `create` error is one retrying cannot fix (the pool's `isPermanent`). */
export function isLoginRefusal(error: unknown): boolean {
  return error instanceof PinRefusedError || error instanceof PinMismatchError;
}

const HINTS: Record<string, string> = {
  CKR_USER_PIN_NOT_INITIALIZED: "the token has no user PIN yet; initialise it with C_InitPIN",
  CKR_TOKEN_NOT_PRESENT: "the token is gone",
  CKR_DEVICE_REMOVED: "the token was removed",
  CKR_SESSION_HANDLE_INVALID: "the session was closed, possibly by someone else",
  CKR_OPERATION_ACTIVE: "an earlier operation on this session never finished",
  CKR_USER_NOT_LOGGED_IN: "the token is not logged in",
  CKR_CRYPTOKI_NOT_INITIALIZED: "the module was finalised by someone else",
};

/** Return codes after which the session can not be used again. */
const SESSION_FATAL_CODES: ReadonlySet<number> = new Set([
  CKR.SESSION_HANDLE_INVALID,
  CKR.SESSION_CLOSED,
  CKR.OPERATION_ACTIVE, // a leftover operation: discard the session
  CKR.OPERATION_NOT_INITIALIZED, // the session's state is not what we left it in
  CKR.DEVICE_REMOVED,
  CKR.TOKEN_NOT_PRESENT,
  CKR.DEVICE_ERROR,
  CKR.DEVICE_MEMORY,
  CKR.GENERAL_ERROR,
  CKR.ARGUMENTS_BAD, // SoftHSM leaves the operation active after it
  CKR.CRYPTOKI_NOT_INITIALIZED,
]);

/** Return codes that mean the token (not just one session) is gone: invalidate the pool. */
export const TOKEN_GONE_CODES: ReadonlySet<number> = new Set([
  CKR.DEVICE_REMOVED,
  CKR.TOKEN_NOT_PRESENT,
  CKR.DEVICE_ERROR,
  CKR.TOKEN_NOT_RECOGNIZED,
  CKR.CRYPTOKI_NOT_INITIALIZED,
]);

/** The CK_RV code inside an error from pkcs11js or the adapter, if any. */
export function errorCode(error: unknown): number | undefined {
  if (error instanceof HsmError) return error.code;
  if (typeof error !== "object" || error === null) return undefined;
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (typeof message === "string") {
    const m = /(CKR_[A-Z0-9_]+)/.exec(message);
    if (m) {
      const c = ckrCode(m[1]);
      if (c !== undefined) return c;
    }
  }
  return typeof code === "number" && code > 0 ? code : undefined;
}

/** Wraps whatever pkcs11js threw as an {@link HsmError} naming the operation and CKR. */
export function toHsmError(error: unknown, operation: string): HsmError {
  if (error instanceof HsmError) return error;
  const code = errorCode(error);
  if (code === undefined) {
    const text = error instanceof Error ? error.message : String(error);
    return new HsmError(`${operation} failed: ${text}`, { operation, cause: error });
  }
  const name = ckrName(code);
  const hint = PIN_REFUSALS.get(code) ?? HINTS[name];
  return new HsmError(
    `${operation} failed: ${name} (0x${code.toString(16)})${hint ? `: ${hint}` : ""}`,
    { operation, code, cause: error },
  );
}

/** Whether an error means the session it happened on can not be used again. */
export function isSessionFatal(error: unknown): boolean {
  if (error instanceof HsmError && error.operation === "session") return true;
  const code = errorCode(error);
  return code !== undefined && SESSION_FATAL_CODES.has(code);
}

/**
 * Whether an error says the session itself was closed (by someone else,
 * with the token's other sessions, or with the module's last life): the
 * operation never ran, and may run again on another session.
 */
export function isSessionGone(error: unknown): boolean {
  if (error instanceof HsmError && error.operation === "session") return true;
  const code = errorCode(error);
  return code === CKR.SESSION_HANDLE_INVALID || code === CKR.SESSION_CLOSED;
}

/** Whether an error says a key's object handle is not (or no longer) valid. */
export function isStaleHandle(error: unknown): boolean {
  const code = errorCode(error);
  return code === CKR.KEY_HANDLE_INVALID || code === CKR.OBJECT_HANDLE_INVALID;
}

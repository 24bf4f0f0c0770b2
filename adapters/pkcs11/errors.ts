/**
 * The PKCS#11 return codes (`CK_RV`) by name, and the errors of the
 * adapter: every failure carries the operation (`C_Login`,
 * `aesGcmEncrypt`, ...) and, when the module returned one, the CKR name and
 * code; what each code means for a session, a token and a retry. PINs never
 * reach a message.
 *
 * @module
 */
/** `CK_RV` codes by name, without the `CKR_` prefix. */
// deno-fmt-ignore
export const CKR = {
  OK: 0x0, CANCEL: 0x1, HOST_MEMORY: 0x2, SLOT_ID_INVALID: 0x3, GENERAL_ERROR: 0x5,
  FUNCTION_FAILED: 0x6, ARGUMENTS_BAD: 0x7, NO_EVENT: 0x8, NEED_TO_CREATE_THREADS: 0x9,
  CANT_LOCK: 0xA, ATTRIBUTE_READ_ONLY: 0x10, ATTRIBUTE_SENSITIVE: 0x11,
  ATTRIBUTE_TYPE_INVALID: 0x12, ATTRIBUTE_VALUE_INVALID: 0x13, ACTION_PROHIBITED: 0x1B,
  DATA_INVALID: 0x20, DATA_LEN_RANGE: 0x21, DEVICE_ERROR: 0x30, DEVICE_MEMORY: 0x31,
  DEVICE_REMOVED: 0x32, ENCRYPTED_DATA_INVALID: 0x40, ENCRYPTED_DATA_LEN_RANGE: 0x41,
  FUNCTION_CANCELED: 0x50, FUNCTION_NOT_PARALLEL: 0x51, FUNCTION_NOT_SUPPORTED: 0x54,
  KEY_HANDLE_INVALID: 0x60, KEY_SIZE_RANGE: 0x62, KEY_TYPE_INCONSISTENT: 0x63, KEY_NOT_NEEDED: 0x64,
  KEY_CHANGED: 0x65, KEY_NEEDED: 0x66, KEY_INDIGESTIBLE: 0x67, KEY_FUNCTION_NOT_PERMITTED: 0x68,
  KEY_NOT_WRAPPABLE: 0x69, KEY_UNEXTRACTABLE: 0x6A, MECHANISM_INVALID: 0x70,
  MECHANISM_PARAM_INVALID: 0x71, OBJECT_HANDLE_INVALID: 0x82, OPERATION_ACTIVE: 0x90,
  OPERATION_NOT_INITIALIZED: 0x91, PIN_INCORRECT: 0xA0, PIN_INVALID: 0xA1, PIN_LEN_RANGE: 0xA2,
  PIN_EXPIRED: 0xA3, PIN_LOCKED: 0xA4, SESSION_CLOSED: 0xB0, SESSION_COUNT: 0xB1,
  SESSION_HANDLE_INVALID: 0xB3, SESSION_PARALLEL_NOT_SUPPORTED: 0xB4, SESSION_READ_ONLY: 0xB5,
  SESSION_EXISTS: 0xB6, SESSION_READ_ONLY_EXISTS: 0xB7, SESSION_READ_WRITE_SO_EXISTS: 0xB8,
  SIGNATURE_INVALID: 0xC0, SIGNATURE_LEN_RANGE: 0xC1, TEMPLATE_INCOMPLETE: 0xD0,
  TEMPLATE_INCONSISTENT: 0xD1, TOKEN_NOT_PRESENT: 0xE0, TOKEN_NOT_RECOGNIZED: 0xE1,
  TOKEN_WRITE_PROTECTED: 0xE2, UNWRAPPING_KEY_HANDLE_INVALID: 0xF0, UNWRAPPING_KEY_SIZE_RANGE: 0xF1,
  UNWRAPPING_KEY_TYPE_INCONSISTENT: 0xF2, USER_ALREADY_LOGGED_IN: 0x100, USER_NOT_LOGGED_IN: 0x101,
  USER_PIN_NOT_INITIALIZED: 0x102, USER_TYPE_INVALID: 0x103, USER_ANOTHER_ALREADY_LOGGED_IN: 0x104,
  USER_TOO_MANY_TYPES: 0x105, WRAPPED_KEY_INVALID: 0x110, WRAPPED_KEY_LEN_RANGE: 0x112,
  WRAPPING_KEY_HANDLE_INVALID: 0x113, WRAPPING_KEY_SIZE_RANGE: 0x114,
  WRAPPING_KEY_TYPE_INCONSISTENT: 0x115, RANDOM_SEED_NOT_SUPPORTED: 0x120, RANDOM_NO_RNG: 0x121,
  DOMAIN_PARAMS_INVALID: 0x130, CURVE_NOT_SUPPORTED: 0x140, BUFFER_TOO_SMALL: 0x150,
  SAVED_STATE_INVALID: 0x160, INFORMATION_SENSITIVE: 0x170, STATE_UNSAVEABLE: 0x180,
  CRYPTOKI_NOT_INITIALIZED: 0x190, CRYPTOKI_ALREADY_INITIALIZED: 0x191, MUTEX_BAD: 0x1A0,
  MUTEX_NOT_LOCKED: 0x1A1, NEW_PIN_MODE: 0x1B0, NEXT_OTP: 0x1B1, EXCEEDED_MAX_ITERATIONS: 0x1B5,
  FIPS_SELF_TEST_FAILED: 0x1B6, LIBRARY_LOAD_FAILED: 0x1B7, PIN_TOO_WEAK: 0x1B8,
  PUBLIC_KEY_INVALID: 0x1B9, FUNCTION_REJECTED: 0x200,
} as const;

const NAMES = new Map<number, string>(Object.entries(CKR).map(([name, code]) => [code, name]));
const CODES = new Map<string, number>(Object.entries(CKR));

/** The CKR name of a return code: `0xa0` gives `"CKR_PIN_INCORRECT"`. */
export function ckrName(code: number): string {
  const name = NAMES.get(code);
  if (name !== undefined) return `CKR_${name}`;
  return code >= 0x80000000
    ? `CKR_VENDOR_DEFINED+0x${(code - 0x80000000).toString(16)}`
    : `CKR_0x${code.toString(16)}`;
}

/** The return code of a CKR name (with or without `CKR_`), or `undefined` for an unknown name. */
export function ckrCode(name: string): number | undefined {
  return CODES.get(name.startsWith("CKR_") ? name.slice(4) : name);
}

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
  CKR_CRYPTOKI_NOT_INITIALIZED:
    "the module was finalised by someone else (the handle initialises it again)",
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

/** Runs one call of the module, wrapping what it threw as an {@link HsmError} naming `name`. */
export function call<T>(name: string, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    throw toHsmError(error, name);
  }
}

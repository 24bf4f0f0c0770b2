/**
 * Errors of the PKCS#11 adapter: every failure carries the operation
 * (`C_Login`, `aesGcmEncrypt`, ...) and, when the module returned one, the
 * CKR name and code. PINs never reach a message.
 *
 * @module
 */

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

// deno-fmt-ignore
const CKR_NAMES = new Map<number, string>([
  [0x0, "OK"],
  [0x1, "CANCEL"],
  [0x2, "HOST_MEMORY"],
  [0x3, "SLOT_ID_INVALID"],
  [0x5, "GENERAL_ERROR"],
  [0x6, "FUNCTION_FAILED"],
  [0x7, "ARGUMENTS_BAD"],
  [0x8, "NO_EVENT"],
  [0x9, "NEED_TO_CREATE_THREADS"],
  [0xA, "CANT_LOCK"],
  [0x10, "ATTRIBUTE_READ_ONLY"],
  [0x11, "ATTRIBUTE_SENSITIVE"],
  [0x12, "ATTRIBUTE_TYPE_INVALID"],
  [0x13, "ATTRIBUTE_VALUE_INVALID"],
  [0x1B, "ACTION_PROHIBITED"],
  [0x20, "DATA_INVALID"],
  [0x21, "DATA_LEN_RANGE"],
  [0x30, "DEVICE_ERROR"],
  [0x31, "DEVICE_MEMORY"],
  [0x32, "DEVICE_REMOVED"],
  [0x40, "ENCRYPTED_DATA_INVALID"],
  [0x41, "ENCRYPTED_DATA_LEN_RANGE"],
  [0x50, "FUNCTION_CANCELED"],
  [0x51, "FUNCTION_NOT_PARALLEL"],
  [0x54, "FUNCTION_NOT_SUPPORTED"],
  [0x60, "KEY_HANDLE_INVALID"],
  [0x62, "KEY_SIZE_RANGE"],
  [0x63, "KEY_TYPE_INCONSISTENT"],
  [0x64, "KEY_NOT_NEEDED"],
  [0x65, "KEY_CHANGED"],
  [0x66, "KEY_NEEDED"],
  [0x67, "KEY_INDIGESTIBLE"],
  [0x68, "KEY_FUNCTION_NOT_PERMITTED"],
  [0x69, "KEY_NOT_WRAPPABLE"],
  [0x6A, "KEY_UNEXTRACTABLE"],
  [0x70, "MECHANISM_INVALID"],
  [0x71, "MECHANISM_PARAM_INVALID"],
  [0x82, "OBJECT_HANDLE_INVALID"],
  [0x90, "OPERATION_ACTIVE"],
  [0x91, "OPERATION_NOT_INITIALIZED"],
  [0xA0, "PIN_INCORRECT"],
  [0xA1, "PIN_INVALID"],
  [0xA2, "PIN_LEN_RANGE"],
  [0xA3, "PIN_EXPIRED"],
  [0xA4, "PIN_LOCKED"],
  [0xB0, "SESSION_CLOSED"],
  [0xB1, "SESSION_COUNT"],
  [0xB3, "SESSION_HANDLE_INVALID"],
  [0xB4, "SESSION_PARALLEL_NOT_SUPPORTED"],
  [0xB5, "SESSION_READ_ONLY"],
  [0xB6, "SESSION_EXISTS"],
  [0xB7, "SESSION_READ_ONLY_EXISTS"],
  [0xB8, "SESSION_READ_WRITE_SO_EXISTS"],
  [0xC0, "SIGNATURE_INVALID"],
  [0xC1, "SIGNATURE_LEN_RANGE"],
  [0xD0, "TEMPLATE_INCOMPLETE"],
  [0xD1, "TEMPLATE_INCONSISTENT"],
  [0xE0, "TOKEN_NOT_PRESENT"],
  [0xE1, "TOKEN_NOT_RECOGNIZED"],
  [0xE2, "TOKEN_WRITE_PROTECTED"],
  [0xF0, "UNWRAPPING_KEY_HANDLE_INVALID"],
  [0xF1, "UNWRAPPING_KEY_SIZE_RANGE"],
  [0xF2, "UNWRAPPING_KEY_TYPE_INCONSISTENT"],
  [0x100, "USER_ALREADY_LOGGED_IN"],
  [0x101, "USER_NOT_LOGGED_IN"],
  [0x102, "USER_PIN_NOT_INITIALIZED"],
  [0x103, "USER_TYPE_INVALID"],
  [0x104, "USER_ANOTHER_ALREADY_LOGGED_IN"],
  [0x105, "USER_TOO_MANY_TYPES"],
  [0x110, "WRAPPED_KEY_INVALID"],
  [0x112, "WRAPPED_KEY_LEN_RANGE"],
  [0x113, "WRAPPING_KEY_HANDLE_INVALID"],
  [0x114, "WRAPPING_KEY_SIZE_RANGE"],
  [0x115, "WRAPPING_KEY_TYPE_INCONSISTENT"],
  [0x120, "RANDOM_SEED_NOT_SUPPORTED"],
  [0x121, "RANDOM_NO_RNG"],
  [0x130, "DOMAIN_PARAMS_INVALID"],
  [0x140, "CURVE_NOT_SUPPORTED"],
  [0x150, "BUFFER_TOO_SMALL"],
  [0x160, "SAVED_STATE_INVALID"],
  [0x170, "INFORMATION_SENSITIVE"],
  [0x180, "STATE_UNSAVEABLE"],
  [0x190, "CRYPTOKI_NOT_INITIALIZED"],
  [0x191, "CRYPTOKI_ALREADY_INITIALIZED"],
  [0x1A0, "MUTEX_BAD"],
  [0x1A1, "MUTEX_NOT_LOCKED"],
  [0x1B0, "NEW_PIN_MODE"],
  [0x1B1, "NEXT_OTP"],
  [0x1B5, "EXCEEDED_MAX_ITERATIONS"],
  [0x1B6, "FIPS_SELF_TEST_FAILED"],
  [0x1B7, "LIBRARY_LOAD_FAILED"],
  [0x1B8, "PIN_TOO_WEAK"],
  [0x1B9, "PUBLIC_KEY_INVALID"],
  [0x200, "FUNCTION_REJECTED"],
]);

/** The CKR name of a return code: `0xa0` gives `"CKR_PIN_INCORRECT"`. */
export function ckrName(code: number): string {
  const name = CKR_NAMES.get(code);
  if (name !== undefined) return `CKR_${name}`;
  return code >= 0x80000000
    ? `CKR_VENDOR_DEFINED+0x${(code - 0x80000000).toString(16)}`
    : `CKR_0x${code.toString(16)}`;
}

/** The return code of a CKR name, or `undefined` for an unknown name. */
export function ckrCode(name: string): number | undefined {
  const bare = name.startsWith("CKR_") ? name.slice(4) : name;
  for (const [code, n] of CKR_NAMES) if (n === bare) return code;
  return undefined;
}

const HINTS: Record<string, string> = {
  CKR_PIN_INCORRECT: "the PIN is wrong (check PKCS11_PIN)",
  CKR_PIN_LOCKED: "the user PIN is locked; the security officer must reset it",
  CKR_USER_PIN_NOT_INITIALIZED: "the token has no user PIN yet; initialise it with C_InitPIN",
  CKR_TOKEN_NOT_PRESENT: "the token is gone",
  CKR_DEVICE_REMOVED: "the token was removed",
  CKR_SESSION_HANDLE_INVALID: "the session was closed, possibly by someone else",
  CKR_OPERATION_ACTIVE: "an earlier operation on this session never finished",
  CKR_USER_NOT_LOGGED_IN: "the token is not logged in",
  CKR_CRYPTOKI_NOT_INITIALIZED: "the module was finalised by someone else",
};

/** Return codes after which the session can not be used again. */
export const SESSION_FATAL_CODES: ReadonlySet<number> = new Set([
  0xB3, // SESSION_HANDLE_INVALID
  0xB0, // SESSION_CLOSED
  0x90, // OPERATION_ACTIVE: a leftover operation; discard the session
  0x91, // OPERATION_NOT_INITIALIZED: the session's state is not what we left it in
  0x32, // DEVICE_REMOVED
  0xE0, // TOKEN_NOT_PRESENT
  0x30, // DEVICE_ERROR
  0x31, // DEVICE_MEMORY
  0x05, // GENERAL_ERROR
  0x07, // ARGUMENTS_BAD: SoftHSM leaves the operation active after it
  0x190, // CRYPTOKI_NOT_INITIALIZED
]);

/** Return codes that mean the token (not just one session) is gone: invalidate the pool. */
export const TOKEN_GONE_CODES: ReadonlySet<number> = new Set([
  0x32, // DEVICE_REMOVED
  0xE0, // TOKEN_NOT_PRESENT
  0x30, // DEVICE_ERROR
  0xE1, // TOKEN_NOT_RECOGNIZED
  0x190, // CRYPTOKI_NOT_INITIALIZED
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
  const hint = HINTS[name];
  return new HsmError(
    `${operation} failed: ${name} (0x${code.toString(16)})${hint ? `: ${hint}` : ""}`,
    { operation, code, cause: error },
  );
}

/** Whether an error has the given CKR code. */
export function hasCode(error: unknown, code: number): boolean {
  return errorCode(error) === code;
}

/** Whether an error means the session it happened on can not be used again. */
export function isSessionFatal(error: unknown): boolean {
  if (error instanceof HsmError && error.operation === "session") return true;
  const code = errorCode(error);
  return code !== undefined && SESSION_FATAL_CODES.has(code);
}

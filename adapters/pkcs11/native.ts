/**
 * pkcs11js's native methods, without the JavaScript wrappers pkcs11js puts
 * on every instance (a rest-arguments closure per call, `util.promisify`
 * for `*Async`, and a new Buffer view of each output). The crypto hot
 * paths call these: the `"async"`/`"sync"` engines and the workers' batch
 * loop. They take any `Uint8Array` (the binding checks `napi_is_buffer`,
 * which accepts every `ArrayBufferView`), return output lengths instead of
 * views, and throw errors whose message is `"CKR_NAME:code"`.
 *
 * Methods are looked up on {@link NATIVE} at call time (not copied out), so
 * whatever wraps the prototype (`tasks/bench/hsm_calls.ts` counts calls
 * there) sees every call.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import pkcs11js from "pkcs11js";

/** How a native `*Callback` method reports: an error, or the output length (`C_Verify`: `true`). */
export type NativeDone = (error: Error | null, result: number | boolean) => void;

type Bytes = Uint8Array;

/** The native methods the hot paths use (`this` must be the pkcs11js instance). */
export interface NativeMethods {
  /** `C_EncryptInit` and the other `*Init` calls with a key. */
  C_EncryptInit(this: pkcs11js.PKCS11, s: Bytes, m: pkcs11js.Mechanism, key: Bytes): void;
  /** `C_DecryptInit`. */
  C_DecryptInit(this: pkcs11js.PKCS11, s: Bytes, m: pkcs11js.Mechanism, key: Bytes): void;
  /** `C_SignInit`. */
  C_SignInit(this: pkcs11js.PKCS11, s: Bytes, m: pkcs11js.Mechanism, key: Bytes): void;
  /** `C_VerifyInit`. */
  C_VerifyInit(this: pkcs11js.PKCS11, s: Bytes, m: pkcs11js.Mechanism, key: Bytes): void;
  /** `C_DigestInit`. */
  C_DigestInit(this: pkcs11js.PKCS11, s: Bytes, m: pkcs11js.Mechanism): void;
  /** `C_Encrypt`, synchronous: returns the output length. */
  C_Encrypt(this: pkcs11js.PKCS11, s: Bytes, input: Bytes, out: Bytes): number;
  /** `C_Decrypt`, synchronous. */
  C_Decrypt(this: pkcs11js.PKCS11, s: Bytes, input: Bytes, out: Bytes): number;
  /** `C_Sign`, synchronous. */
  C_Sign(this: pkcs11js.PKCS11, s: Bytes, input: Bytes, out: Bytes): number;
  /** `C_Verify`, synchronous: throws `CKR_SIGNATURE_INVALID` on a mismatch. */
  C_Verify(this: pkcs11js.PKCS11, s: Bytes, input: Bytes, signature: Bytes): boolean;
  /** `C_Digest`, synchronous. */
  C_Digest(this: pkcs11js.PKCS11, s: Bytes, input: Bytes, out: Bytes): number;
  /** `C_Encrypt` on libuv's thread pool; `done` gets the output length. */
  C_EncryptCallback(this: pkcs11js.PKCS11, s: Bytes, i: Bytes, o: Bytes, done: NativeDone): void;
  /** `C_Decrypt` on libuv's thread pool. */
  C_DecryptCallback(this: pkcs11js.PKCS11, s: Bytes, i: Bytes, o: Bytes, done: NativeDone): void;
  /** `C_Sign` on libuv's thread pool. */
  C_SignCallback(this: pkcs11js.PKCS11, s: Bytes, i: Bytes, o: Bytes, done: NativeDone): void;
  /** `C_Verify` on libuv's thread pool; `done` gets `true` or an error. */
  C_VerifyCallback(this: pkcs11js.PKCS11, s: Bytes, i: Bytes, sig: Bytes, done: NativeDone): void;
  /** `C_Digest` on libuv's thread pool. */
  C_DigestCallback(this: pkcs11js.PKCS11, s: Bytes, i: Bytes, o: Bytes, done: NativeDone): void;
}

/** The binding's prototype: pkcs11js's `PKCS11` class extends it. */
export const NATIVE: NativeMethods = Object.getPrototypeOf(pkcs11js.PKCS11.prototype);

/** A zero-length view of a real allocation: a truly empty buffer reaches the module as NULL. */
export const NON_NULL_EMPTY: Buffer = Buffer.alloc(1).subarray(0, 0);

/**
 * `bytes` as they are, unless empty: SoftHSM rejects a NULL data pointer
 * with `CKR_ARGUMENTS_BAD` (and then leaves the operation active).
 */
export function nonNull(bytes: Uint8Array): Uint8Array {
  return bytes.length === 0 ? NON_NULL_EMPTY : bytes;
}

/** The CKR code in a native error's message (`"CKR_NAME:code"`), or 0. */
export function nativeCode(error: unknown): number {
  const m = /CKR_\w+:(\d+)/.exec(String((error as Error)?.message));
  return m ? Number(m[1]) : 0;
}

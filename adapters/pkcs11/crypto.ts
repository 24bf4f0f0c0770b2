/**
 * The crypto operations: AES-GCM encrypt/decrypt, ECDSA P-256 sign/verify,
 * SHA-256 and random bytes, with `Uint8Array` in and out. Each builds the
 * mechanism and buffers and hands the call to the session's
 * {@link CryptoEngine}, which decides the thread it runs on.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import pkcs11js from "pkcs11js";
import { toHsmError } from "./errors.ts";
import type { SessionHandle } from "./handle.ts";
import type { HsmKey, HsmKeyKind } from "./keys.ts";
import type { CryptoEngine } from "./engine.ts";
import {
  checkSealed,
  GCM_IV_BYTES,
  gcmDecryptError,
  gcmMechanism,
  sealedLength,
  splitSealed,
} from "./gcm.ts";

/** Throws a TypeError unless `key` is of `kind`. */
export function needKind(key: HsmKey, kind: HsmKeyKind, operation: string): void {
  if (key?.kind !== kind) {
    throw new TypeError(`${operation} needs an "${kind}" key, got ${JSON.stringify(key?.kind)}`);
  }
}

/** Throws a TypeError unless `value` is a Uint8Array. */
export function needBytes(value: unknown, what: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new TypeError(`${what} must be a Uint8Array, got ${typeof value}`);
  }
}

/**
 * AES-GCM encryption with a fresh random 12-byte IV. Returns
 * `IV ‖ ciphertext ‖ tag` (28 bytes longer than the plaintext).
 */
export async function aesGcmEncrypt(
  session: SessionHandle,
  engine: CryptoEngine,
  key: HsmKey,
  plaintext: Uint8Array,
  aad?: Uint8Array,
): Promise<Uint8Array<ArrayBuffer>> {
  needKind(key, "aes", "aesGcmEncrypt");
  needBytes(plaintext, "plaintext");
  // One buffer: the IV in front, the engine writes `ciphertext ‖ tag` behind it.
  const sealed = new Uint8Array(sealedLength(plaintext.length));
  const iv = crypto.getRandomValues(sealed.subarray(0, GCM_IV_BYTES));
  const body = sealed.subarray(GCM_IV_BYTES);
  const mechanism = gcmMechanism(iv, aad);
  const out = await engine.encrypt(session, mechanism, key.handle, plaintext, body.length, body);
  if (out.buffer !== sealed.buffer) sealed.set(out, GCM_IV_BYTES); // an engine that made its own
  return sealed;
}

/**
 * AES-GCM decryption of `IV ‖ ciphertext ‖ tag`. A wrong key, AAD or a
 * tampered message fails with `CKR_ENCRYPTED_DATA_INVALID`.
 */
export async function aesGcmDecrypt(
  session: SessionHandle,
  engine: CryptoEngine,
  key: HsmKey,
  sealed: Uint8Array,
  aad?: Uint8Array,
): Promise<Uint8Array<ArrayBuffer>> {
  needKind(key, "aes", "aesGcmDecrypt");
  checkSealed(sealed);
  const { iv, body } = splitSealed(sealed);
  try {
    return await engine.decrypt(session, gcmMechanism(iv, aad), key.handle, body, body.length);
  } catch (error) {
    throw gcmDecryptError(error);
  }
}

// SoftHSM 2.6 has no CKM_ECDSA_SHA256: hash here, sign the digest with CKM_ECDSA.
const ECDSA: pkcs11js.Mechanism = { mechanism: pkcs11js.CKM_ECDSA };

function sha256Local(data: Uint8Array): Uint8Array {
  return createHash("sha256").update(data).digest();
}
const SHA256: pkcs11js.Mechanism = { mechanism: pkcs11js.CKM_SHA256 };

/**
 * ECDSA P-256 with SHA-256 over `data`. The signature is `r ‖ s` (64
 * bytes), the format WebCrypto's ECDSA uses.
 */
export async function ecdsaSign(
  session: SessionHandle,
  engine: CryptoEngine,
  privateKey: HsmKey,
  data: Uint8Array,
): Promise<Uint8Array<ArrayBuffer>> {
  needKind(privateKey, "ec-private", "ecdsaSign");
  needBytes(data, "data");
  return await engine.sign(session, ECDSA, privateKey.handle, sha256Local(data), 64);
}

/** Verifies an ECDSA P-256/SHA-256 `r ‖ s` signature: `false` when it does not match. */
export async function ecdsaVerify(
  session: SessionHandle,
  engine: CryptoEngine,
  publicKey: HsmKey,
  data: Uint8Array,
  signature: Uint8Array,
): Promise<boolean> {
  needKind(publicKey, "ec-public", "ecdsaVerify");
  needBytes(data, "data");
  needBytes(signature, "signature");
  return await engine.verify(session, ECDSA, publicKey.handle, sha256Local(data), signature);
}

/** SHA-256 of `data`, computed by the HSM. */
export async function sha256(
  session: SessionHandle,
  engine: CryptoEngine,
  data: Uint8Array,
): Promise<Uint8Array<ArrayBuffer>> {
  needBytes(data, "data");
  return await engine.digest(session, SHA256, data, 32);
}

/** `length` random bytes from the HSM's generator (`C_GenerateRandom`). */
export function randomBytes(session: SessionHandle, length: number): Uint8Array<ArrayBuffer> {
  if (!Number.isInteger(length) || length < 0 || length > 1 << 20) {
    throw new RangeError(`random length must be an integer from 0 to 1 MiB, got ${length}`);
  }
  // Zero bytes need no token: a NULL buffer would be CKR_ARGUMENTS_BAD.
  if (length === 0) return new Uint8Array(0);
  const out = Buffer.alloc(length);
  try {
    session.module.pkcs11.C_GenerateRandom(session.handle, out);
  } catch (error) {
    throw toHsmError(error, "C_GenerateRandom");
  }
  return new Uint8Array(out.buffer as ArrayBuffer, out.byteOffset, length);
}

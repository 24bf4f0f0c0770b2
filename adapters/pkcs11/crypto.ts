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
import { HsmError, toHsmError } from "./errors.ts";
import type { SessionHandle } from "./handle.ts";
import type { HsmKey, HsmKeyKind } from "./keys.ts";
import type { CryptoEngine } from "./engine.ts";

const CKR_GENERAL_ERROR = 0x05;
const CKR_ENCRYPTED_DATA_INVALID = 0x40;

/** AES-GCM IV length: 12 bytes, the size GCM is designed for. */
export const GCM_IV_BYTES = 12;
/** AES-GCM tag length: 16 bytes (128 bits). */
export const GCM_TAG_BYTES = 16;

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

function gcm(iv: Uint8Array, aad: Uint8Array | undefined): pkcs11js.Mechanism {
  return {
    mechanism: pkcs11js.CKM_AES_GCM,
    parameter: {
      type: pkcs11js.CK_PARAMS_AES_GCM,
      iv: Buffer.from(iv),
      aad: aad && aad.length > 0 ? Buffer.from(aad) : undefined,
      tagBits: GCM_TAG_BYTES * 8,
    } as pkcs11js.IParams,
  };
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
  const iv = crypto.getRandomValues(new Uint8Array(GCM_IV_BYTES));
  const sealed = await engine.encrypt(
    session,
    gcm(iv, aad),
    key.handle,
    plaintext,
    plaintext.length + GCM_TAG_BYTES,
  );
  const out = new Uint8Array(GCM_IV_BYTES + sealed.length);
  out.set(iv);
  out.set(sealed, GCM_IV_BYTES);
  return out;
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
  const iv = sealed.subarray(0, GCM_IV_BYTES);
  const body = sealed.subarray(GCM_IV_BYTES);
  try {
    return await engine.decrypt(session, gcm(iv, aad), key.handle, body, body.length);
  } catch (error) {
    throw gcmDecryptError(error);
  }
}

/** Checks what {@link aesGcmDecrypt} needs before any call is made. */
export function checkSealed(sealed: unknown): asserts sealed is Uint8Array {
  needBytes(sealed, "ciphertext");
  if (sealed.length < GCM_IV_BYTES + GCM_TAG_BYTES) {
    throw new HsmError(
      `AES-GCM ciphertext must be at least ${GCM_IV_BYTES + GCM_TAG_BYTES} bytes ` +
        `(IV ‖ ciphertext ‖ tag), got ${sealed.length}`,
      { operation: "aesGcmDecrypt" },
    );
  }
}

/**
 * SoftHSM reports a failed tag check as CKR_GENERAL_ERROR; the operation is
 * over and the session fine. Says what it means, with the standard code;
 * any other error is returned as it is.
 */
export function gcmDecryptError(error: unknown): unknown {
  const code = error instanceof HsmError ? error.code : undefined;
  if (code !== CKR_GENERAL_ERROR && code !== CKR_ENCRYPTED_DATA_INVALID) return error;
  return new HsmError(
    "aesGcmDecrypt failed: CKR_ENCRYPTED_DATA_INVALID (0x40): the tag does not match " +
      "(wrong key, wrong AAD or a tampered ciphertext)",
    { operation: "aesGcmDecrypt", code: CKR_ENCRYPTED_DATA_INVALID, cause: error },
  );
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
  const out = Buffer.alloc(length);
  try {
    session.module.pkcs11.C_GenerateRandom(session.handle, out);
  } catch (error) {
    throw toHsmError(error, "C_GenerateRandom");
  }
  return new Uint8Array(out.buffer as ArrayBuffer, out.byteOffset, length);
}

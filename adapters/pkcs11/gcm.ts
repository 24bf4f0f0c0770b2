/**
 * The AES-GCM framing, in one place: a sealed message is
 * `IV ‖ ciphertext ‖ tag` with a 12-byte IV and a 16-byte tag. The session
 * methods, the batched ops and the worker's batch runner all build their
 * mechanisms and lengths from here.
 *
 * @module
 */
import pkcs11js from "pkcs11js";
import { CKR } from "./ckr.ts";
import { HsmError } from "./errors.ts";

/** AES-GCM IV length: 12 bytes, the size GCM is designed for. */
export const GCM_IV_BYTES = 12;
/** AES-GCM tag length: 16 bytes (128 bits). */
export const GCM_TAG_BYTES = 16;
/** The tag length in bits, as `CK_GCM_PARAMS` wants it. */
export const GCM_TAG_BITS: number = GCM_TAG_BYTES * 8;

/** Length of the sealed message for a plaintext of `plaintextLength` bytes. */
export function sealedLength(plaintextLength: number): number {
  return GCM_IV_BYTES + plaintextLength + GCM_TAG_BYTES;
}

/**
 * The `CKM_AES_GCM` mechanism for this IV and AAD (an empty AAD is none).
 * The binding takes any `Uint8Array` (`napi_is_buffer`): no Buffer views.
 */
export function gcmMechanism(iv: Uint8Array, aad: Uint8Array | undefined): pkcs11js.Mechanism {
  return {
    mechanism: pkcs11js.CKM_AES_GCM,
    parameter: {
      type: pkcs11js.CK_PARAMS_AES_GCM,
      iv,
      aad: aad && aad.length > 0 ? aad : undefined,
      tagBits: GCM_TAG_BITS,
    } as pkcs11js.IParams,
  };
}

/** Throws unless `sealed` is a Uint8Array long enough to hold an IV and a tag. */
export function checkSealed(sealed: unknown): asserts sealed is Uint8Array {
  if (!(sealed instanceof Uint8Array)) {
    throw new TypeError(`ciphertext must be a Uint8Array, got ${typeof sealed}`);
  }
  if (sealed.length < GCM_IV_BYTES + GCM_TAG_BYTES) {
    throw new HsmError(
      `AES-GCM ciphertext must be at least ${GCM_IV_BYTES + GCM_TAG_BYTES} bytes ` +
        `(IV ‖ ciphertext ‖ tag), got ${sealed.length}`,
      { operation: "aesGcmDecrypt" },
    );
  }
}

/** The IV and the `ciphertext ‖ tag` body of a sealed message (views, no copy). */
export function splitSealed(sealed: Uint8Array): { iv: Uint8Array; body: Uint8Array } {
  return { iv: sealed.subarray(0, GCM_IV_BYTES), body: sealed.subarray(GCM_IV_BYTES) };
}

/**
 * SoftHSM reports a failed tag check as CKR_GENERAL_ERROR; the operation is
 * over and the session fine. Says what it means, with the standard code;
 * any other error is returned as it is.
 */
export function gcmDecryptError(error: unknown): unknown {
  const code = error instanceof HsmError ? error.code : undefined;
  if (code !== CKR.GENERAL_ERROR && code !== CKR.ENCRYPTED_DATA_INVALID) return error;
  return new HsmError(
    "aesGcmDecrypt failed: CKR_ENCRYPTED_DATA_INVALID (0x40): the tag does not match " +
      "(wrong key, wrong AAD or a tampered ciphertext)",
    { operation: "aesGcmDecrypt", code: CKR.ENCRYPTED_DATA_INVALID, cause: error },
  );
}

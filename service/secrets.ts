/**
 * The secret manager's two operations, on a pooled HSM session: AES-GCM
 * encryption under a random key among those with a label (so keys can
 * rotate: add a key with the same label, old ciphertexts still name theirs
 * by `key_id`), and decryption with the key a ciphertext names.
 *
 * Request and response bodies use base64 for bytes and the field names of
 * the original service: `key_label`, `plaintext`, `ciphertext`, `key_id`.
 *
 * @module
 */

import type { AcquireOptions } from "../mod.ts";
import { HsmError, type HsmKey, type HsmSession } from "../adapters/pkcs11/mod.ts";
import { HttpError } from "./http_error.ts";
import { decodeBase64Field, encodeBase64, stringFields } from "./request_body.ts";

/** Where sessions come from: the HSM handle's `use()`. */
export interface SessionSource {
  /** Runs `fn` with a pooled session, released (or discarded) afterwards. */
  use<T>(
    fn: (session: HsmSession, signal: AbortSignal) => Promise<T>,
    options?: AcquireOptions,
  ): Promise<T>;
}

/** `POST /encrypt` response body. */
export interface EncryptResult {
  /** base64 of `IV ‖ ciphertext ‖ tag`. */
  ciphertext: string;
  /** Hex `CKA_ID` of the key used; pass it back to decrypt. */
  key_id: string;
}

/** `POST /decrypt` response body. */
export interface DecryptResult {
  /** base64 of the plaintext. */
  plaintext: string;
  /** Hex `CKA_ID` of the key that decrypted it. */
  key_id: string;
}

/** IV (12) + tag (16): no valid ciphertext is shorter. */
const MIN_CIPHERTEXT_BYTES = 28;
const MAX_LABEL_LENGTH = 128;

function checkLabel(label: string): string {
  if (label.length === 0 || label.length > MAX_LABEL_LENGTH) {
    throw new HttpError(
      400,
      "invalid_field",
      `field "key_label" must be 1 to ${MAX_LABEL_LENGTH} characters, got ${label.length}`,
    );
  }
  return label;
}

function checkKeyId(id: string): string {
  if (!/^(?:[0-9a-f]{2}){1,64}$/i.test(id)) {
    throw new HttpError(
      400,
      "invalid_field",
      `field "key_id" must be the hex key id that /encrypt returned, got ${
        JSON.stringify(id.slice(0, 140))
      }`,
    );
  }
  return id.toLowerCase();
}

function unknownLabel(label: string): HttpError {
  return new HttpError(
    404,
    "unknown_key_label",
    `no AES key labelled ${JSON.stringify(label)} on the token; create one or fix "key_label"`,
  );
}

/** Checks an `/encrypt` body: `{ key_label, plaintext: base64 }`. */
export function parseEncryptRequest(body: Record<string, unknown>): {
  label: string;
  plaintext: Uint8Array;
} {
  const fields = stringFields(body, ["key_label", "plaintext"]);
  return {
    label: checkLabel(fields.key_label),
    plaintext: decodeBase64Field("plaintext", fields.plaintext),
  };
}

/** Encrypts with a random key among those labelled `label`, on a session of `session`. */
export async function encryptWith(
  session: HsmSession,
  label: string,
  plaintext: Uint8Array,
): Promise<EncryptResult> {
  const key = session.findRandomKey(label, "aes");
  if (key === undefined) throw unknownLabel(label);
  const sealed = await session.encrypt(key, plaintext);
  return { ciphertext: encodeBase64(sealed), key_id: key.id };
}

/** `POST /encrypt` on a pooled session. */
export function encrypt(
  sessions: SessionSource,
  body: Record<string, unknown>,
  options: AcquireOptions,
): Promise<EncryptResult> {
  const { label, plaintext } = parseEncryptRequest(body);
  return sessions.use((session) => encryptWith(session, label, plaintext), options);
}

/**
 * `POST /decrypt` on a pooled session: `{ key_label, ciphertext, key_id? }`.
 * Without `key_id`, every key with the label is tried (the tag tells which
 * one sealed it).
 */
export function decrypt(
  sessions: SessionSource,
  body: Record<string, unknown>,
  options: AcquireOptions,
): Promise<DecryptResult> {
  const fields = stringFields(body, ["key_label", "ciphertext"], ["key_id"]);
  const label = checkLabel(fields.key_label);
  const keyId = fields.key_id === undefined ? undefined : checkKeyId(fields.key_id);
  const sealed = decodeBase64Field("ciphertext", fields.ciphertext);
  if (sealed.length < MIN_CIPHERTEXT_BYTES) {
    throw new HttpError(
      400,
      "invalid_ciphertext",
      `field "ciphertext" is ${sealed.length} bytes; a ciphertext from /encrypt is at least ` +
        `${MIN_CIPHERTEXT_BYTES} (12-byte IV, data, 16-byte tag)`,
    );
  }
  return sessions.use(async (session) => {
    let keys: HsmKey[];
    if (keyId !== undefined) {
      const key = session.findKeyById(keyId, "aes");
      if (key === undefined || key.label !== label) {
        throw new HttpError(
          404,
          "unknown_key",
          `no AES key with key_id ${keyId} and key_label ${JSON.stringify(label)} on the token`,
        );
      }
      keys = [key];
    } else {
      keys = session.findKeys(label, "aes");
      if (keys.length === 0) throw unknownLabel(label);
    }
    let lastError: unknown;
    for (const key of keys) {
      try {
        const plaintext = await session.decrypt(key, sealed);
        return { plaintext: encodeBase64(plaintext), key_id: key.id };
      } catch (error) {
        // Only "this key did not seal it" moves on to the next key.
        if (!(error instanceof HsmError && error.ckr === "CKR_ENCRYPTED_DATA_INVALID")) throw error;
        lastError = error;
      }
    }
    throw lastError;
  }, options);
}

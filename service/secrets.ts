/**
 * The secret manager's two operations, on the HSM handle's fast path
 * ({@link Hsm.encrypt} and {@link Hsm.decrypt}: cached key lookups, pooled
 * sessions): AES-GCM encryption under a random key among those with a label
 * (so keys can rotate: add a key with the same label, old ciphertexts still
 * name theirs by `key_id`), and decryption with the key a ciphertext names.
 *
 * "No such key" is a 404 only when the token answered: when it cannot be
 * read, the answer is 503 `hsm_unavailable` with `Retry-After`, so clients
 * retry instead of giving up (see `token_check.ts`).
 *
 * Request and response bodies use base64 for bytes and the field names
 * `key_label`, `plaintext`, `ciphertext`, `key_id`.
 *
 * @module
 */

import type { AcquireOptions } from "../mod.ts";
import { type Hsm, HsmError, KeyNotFoundError } from "../adapters/pkcs11/mod.ts";
import { HttpError } from "./http_error.ts";
import { errorText } from "./log.ts";
import { decodeBase64Field, encodeBase64, stringFields } from "./request_body.ts";
import { type SessionSource, tokenProblem } from "./token_check.ts";

/** What the operations need of the HSM handle. */
export interface CryptoSource extends SessionSource {
  /** {@link Hsm.encrypt}. */
  encrypt: Hsm["encrypt"];
  /** {@link Hsm.decrypt}. */
  decrypt: Hsm["decrypt"];
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

/** 404 `unknown_key_label`: the token answered and has no key with this label. */
export function unknownLabel(label: string): HttpError {
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

/**
 * A key lookup found nothing: `notFound` (404) if the token answers, else
 * 503 `hsm_unavailable`. Errors getting a session for the check are thrown
 * as they are (503 `pool_exhausted`, ...).
 */
async function missingKey(
  sessions: SessionSource,
  notFound: HttpError,
  options: AcquireOptions,
): Promise<never> {
  const problem = await tokenProblem(sessions, options);
  if (problem === undefined) throw notFound;
  throw tokenUnreadable(problem);
}

/** 503 `hsm_unavailable` for a token that cannot be read (`problem` is the module's error). */
export function tokenUnreadable(problem: unknown): HttpError {
  return new HttpError(
    503,
    "hsm_unavailable",
    `the HSM token cannot be read (${errorText(problem)}), so whether the key exists is ` +
      "unknown; retry later",
    { "retry-after": "1" },
  );
}

/** `POST /encrypt`: a random key among those with the label. */
export async function encrypt(
  hsm: CryptoSource,
  body: Record<string, unknown>,
  options: AcquireOptions,
): Promise<EncryptResult> {
  const { label, plaintext } = parseEncryptRequest(body);
  try {
    const sealed = await hsm.encrypt(label, plaintext, options);
    return { ciphertext: encodeBase64(sealed.ciphertext), key_id: sealed.keyId };
  } catch (error) {
    if (!(error instanceof KeyNotFoundError)) throw error;
    return await missingKey(hsm, unknownLabel(label), options);
  }
}

/** Checks a `/decrypt` body: `{ key_label, ciphertext, key_id? }`. */
function parseDecryptRequest(body: Record<string, unknown>) {
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
  return { label, keyId, sealed };
}

/** 404 `key_not_found`: the token answered and has no AES key with this id under this label. */
function keyNotFound(keyId: string, label: string): HttpError {
  return new HttpError(
    404,
    "key_not_found",
    `no AES key with key_id ${keyId} labelled ${JSON.stringify(label)} on the token`,
  );
}

/**
 * `POST /decrypt`, scoped by `key_label`: only keys with that label are used. With `key_id`,
 * that key decrypts if it carries the label; a key outside the label is `404 key_not_found`,
 * the same answer as an id no key has, so a label can separate purposes or tenants. Without
 * `key_id`, every key with the label is tried: the GCM tag tells which one sealed it.
 */
export async function decrypt(
  hsm: CryptoSource,
  body: Record<string, unknown>,
  options: AcquireOptions,
): Promise<DecryptResult> {
  const { label, keyId, sealed } = parseDecryptRequest(body);
  if (keyId !== undefined) return await decryptWithKey(hsm, keyId, label, sealed, options);
  const ids = await hsm.use((s) => s.findKeys(label, "aes", true).map((key) => key.id), options);
  if (ids.length === 0) return await missingKey(hsm, unknownLabel(label), options);
  let lastError: unknown;
  for (const id of ids) {
    try {
      return await decryptWithKey(hsm, id, label, sealed, options);
    } catch (error) {
      // Only "this key did not seal it" moves on to the next key.
      if (!(error instanceof HsmError && error.ckr === "CKR_ENCRYPTED_DATA_INVALID")) throw error;
      lastError = error;
    }
  }
  throw lastError;
}

/** Decrypts with the key `keyId` (one of `label`'s); its absence is {@link missingKey}'s question. */
async function decryptWithKey(
  hsm: CryptoSource,
  keyId: string,
  label: string,
  sealed: Uint8Array,
  options: AcquireOptions,
): Promise<DecryptResult> {
  try {
    const plaintext = await hsm.decrypt(keyId, sealed, { ...options, label });
    return { plaintext: encodeBase64(plaintext), key_id: keyId };
  } catch (error) {
    if (!(error instanceof KeyNotFoundError)) throw error;
    return await missingKey(hsm, keyNotFound(keyId, label), options);
  }
}

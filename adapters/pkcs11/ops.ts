/**
 * Every operation of the adapter, each written once as a plain synchronous
 * function over a session: `(pkcs11, session, ...)`. Key management (make,
 * find, export, destroy) runs on the thread that holds the handle; the
 * crypto operations in {@link CRYPTO} run there or on a session's worker
 * thread (`threads.ts`), the same functions either way.
 *
 * AES-GCM messages are `IV ‖ ciphertext ‖ tag` (12-byte random IV, 16-byte
 * tag); ECDSA is P-256 over SHA-256 (hashed here: SoftHSM 2.6 has no
 * `CKM_ECDSA_SHA256`), signatures `r ‖ s` as WebCrypto makes them.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import type pkcs11jsTypes from "pkcs11js";
import { call, CKR, HsmError } from "./errors.ts";
import { pkcs11js } from "./module.ts";

type Pkcs11 = pkcs11jsTypes.PKCS11;
type Bytes = Uint8Array;

/** What a key is for. */
export type HsmKeyKind = "aes" | "ec-private" | "ec-public";

/** A key object on the token, as seen from one application. */
export interface HsmKey {
  /** The PKCS#11 object handle. Valid in every session of this process while the object lives. */
  readonly handle: Buffer;
  /** `CKA_LABEL`. */
  readonly label: string;
  /** `CKA_ID` as lowercase hex: a stable name for the key, safe to show (the service's `key_id`). */
  readonly id: string;
  /** What the key is for. */
  readonly kind: HsmKeyKind;
}

/** A generated EC key pair. */
export interface HsmKeyPair {
  /** The signing half (sensitive, never extractable). */
  readonly privateKey: HsmKey;
  /** The verifying half. */
  readonly publicKey: HsmKey;
}

/** Options for generated or created keys. */
export interface KeyOptions {
  /** `CKA_LABEL`. Several keys may share a label (rotation). */
  label: string;
  /** `CKA_ID` bytes. Default 16 random bytes. */
  id?: Uint8Array;
  /** A token object that outlives the session (default `true`), or a session object. */
  token?: boolean;
}

/** AES-GCM IV length in bytes. */
export const GCM_IV_BYTES = 12;
/** AES-GCM tag length in bytes. */
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

/** Throws unless `sealed` is a Uint8Array long enough to hold an IV and a tag. */
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

/** Throws a TypeError unless `id` is a non-empty even-length hex string (a `CKA_ID`). */
export function checkKeyId(id: unknown): asserts id is string {
  if (typeof id !== "string" || !/^([0-9a-f]{2})+$/i.test(id)) {
    throw new TypeError(`key id must be hex, got ${JSON.stringify(id)}`);
  }
}

function checkLabel(label: unknown): string {
  if (typeof label !== "string" || label.length === 0) {
    throw new TypeError(`key label must be a non-empty string, got ${JSON.stringify(label)}`);
  }
  return label;
}

/**
 * pkcs11js's native methods, without the wrappers pkcs11js puts on every
 * instance (a rest-arguments closure and a new Buffer view per call): they
 * take any `Uint8Array`, return output lengths, and throw `"CKR_NAME:code"`.
 */
type NativeCall = (this: Pkcs11, ...args: unknown[]) => number & boolean;
const N: Record<string, NativeCall> = Object.getPrototypeOf(pkcs11js.PKCS11.prototype);

/** A zero-length view of a real allocation: a truly empty buffer reaches the module as NULL. */
const NON_NULL_EMPTY = new Uint8Array(1).subarray(0, 0);
const nonNull = (bytes: Bytes): Bytes => bytes.length === 0 ? NON_NULL_EMPTY : bytes;

function gcm(iv: Bytes, aad: Bytes | undefined): pkcs11jsTypes.Mechanism {
  return {
    mechanism: pkcs11js.CKM_AES_GCM,
    parameter: {
      type: pkcs11js.CK_PARAMS_AES_GCM,
      iv,
      aad: aad && aad.length > 0 ? aad : undefined,
      tagBits: GCM_TAG_BYTES * 8,
    } as pkcs11jsTypes.IParams,
  };
}

const ECDSA: pkcs11jsTypes.Mechanism = { mechanism: pkcs11js.CKM_ECDSA };
const SHA256: pkcs11jsTypes.Mechanism = { mechanism: pkcs11js.CKM_SHA256 };
const sha256Here = (data: Bytes): Bytes => createHash("sha256").update(data).digest();

/** AES-GCM with a fresh random IV: `IV ‖ ciphertext ‖ tag`. */
function encrypt(p: Pkcs11, s: Bytes, key: Bytes, plaintext: Bytes, aad?: Bytes): Bytes {
  const sealed = new Uint8Array(GCM_IV_BYTES + plaintext.length + GCM_TAG_BYTES);
  const iv = crypto.getRandomValues(sealed.subarray(0, GCM_IV_BYTES));
  call("C_EncryptInit", () => N.C_EncryptInit.call(p, s, gcm(iv, aad), key));
  call(
    "C_Encrypt",
    () => N.C_Encrypt.call(p, s, nonNull(plaintext), sealed.subarray(GCM_IV_BYTES)),
  );
  return sealed;
}

/** AES-GCM decryption of `IV ‖ ciphertext ‖ tag`; a failed tag check says so. */
function decrypt(p: Pkcs11, s: Bytes, key: Bytes, sealed: Bytes, aad?: Bytes): Bytes {
  const iv = sealed.subarray(0, GCM_IV_BYTES), body = sealed.subarray(GCM_IV_BYTES);
  const out = new Uint8Array(body.length);
  call("C_DecryptInit", () => N.C_DecryptInit.call(p, s, gcm(iv, aad), key));
  try {
    return out.subarray(0, call("C_Decrypt", () => N.C_Decrypt.call(p, s, body, out)));
  } catch (error) {
    // SoftHSM reports a failed tag check as CKR_GENERAL_ERROR; the session is fine.
    const code = (error as HsmError).code;
    if (code !== CKR.GENERAL_ERROR && code !== CKR.ENCRYPTED_DATA_INVALID) throw error;
    throw new HsmError(
      "aesGcmDecrypt failed: CKR_ENCRYPTED_DATA_INVALID (0x40): the tag does not match " +
        "(wrong key, wrong AAD or a tampered ciphertext)",
      { operation: "aesGcmDecrypt", code: CKR.ENCRYPTED_DATA_INVALID, cause: error },
    );
  }
}

/** ECDSA P-256 over SHA-256 of `data`: `r ‖ s`, 64 bytes. */
function sign(p: Pkcs11, s: Bytes, key: Bytes, data: Bytes): Bytes {
  const digest = sha256Here(data);
  const out = new Uint8Array(64);
  call("C_SignInit", () => N.C_SignInit.call(p, s, ECDSA, key));
  return out.subarray(0, call("C_Sign", () => N.C_Sign.call(p, s, digest, out)));
}

/** Whether `signature` is an ECDSA P-256/SHA-256 signature of `data`. */
function verify(p: Pkcs11, s: Bytes, key: Bytes, data: Bytes, signature: Bytes): boolean {
  const digest = sha256Here(data);
  call("C_VerifyInit", () => N.C_VerifyInit.call(p, s, ECDSA, key));
  try {
    return call("C_Verify", () => N.C_Verify.call(p, s, digest, nonNull(signature)));
  } catch (error) {
    const code = (error as HsmError).code;
    if (code === CKR.SIGNATURE_INVALID || code === CKR.SIGNATURE_LEN_RANGE) return false;
    throw error;
  }
}

/** SHA-256 computed by the HSM. */
function digest(p: Pkcs11, s: Bytes, data: Bytes): Bytes {
  const out = new Uint8Array(32);
  call("C_DigestInit", () => N.C_DigestInit.call(p, s, SHA256));
  return out.subarray(0, call("C_Digest", () => N.C_Digest.call(p, s, nonNull(data), out)));
}

/**
 * Whether the token in `slot` answers (`C_GetTokenInfo`; `s` is unused): a
 * group's probe runs it on a worker thread first, so a module that still
 * hangs keeps that thread waiting, not the event loop.
 */
function ping(p: Pkcs11, _s: Bytes, slot: Bytes): boolean {
  call("C_GetTokenInfo", () => p.C_GetTokenInfo(Buffer.from(slot)));
  return true;
}

/** The crypto operations (and the probe's ping), by name: what may run on a worker thread. */
export const CRYPTO = { encrypt, decrypt, sign, verify, digest, ping };

/** The name of a crypto operation. */
export type CryptoOp = keyof typeof CRYPTO;

/** `length` random bytes from the HSM's generator (`C_GenerateRandom`). */
export function random(p: Pkcs11, s: Buffer, length: number): Uint8Array<ArrayBuffer> {
  if (!Number.isInteger(length) || length < 0 || length > 1 << 20) {
    throw new RangeError(`random length must be an integer from 0 to 1 MiB, got ${length}`);
  }
  if (length === 0) return new Uint8Array(0); // a NULL buffer would be CKR_ARGUMENTS_BAD
  const out = Buffer.alloc(length);
  call("C_GenerateRandom", () => p.C_GenerateRandom(s, out));
  return new Uint8Array(out.buffer as ArrayBuffer, out.byteOffset, length);
}

/** DER of the P-256 curve OID (1.2.840.10045.3.1.7), `CKA_EC_PARAMS`. */
const P256_PARAMS = Buffer.from("06082a8648ce3d030107", "hex");

const KIND_TEMPLATE: Record<HsmKeyKind, pkcs11jsTypes.Template> = {
  "aes": [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
  ],
  "ec-private": [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_EC },
  ],
  "ec-public": [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_EC },
  ],
};

/** The template that finds keys of `kind`; a TypeError naming the kinds for anything else. */
function kindTemplate(kind: HsmKeyKind): pkcs11jsTypes.Template {
  const template = Object.hasOwn(KIND_TEMPLATE, kind) ? KIND_TEMPLATE[kind] : undefined;
  if (template === undefined) {
    throw new TypeError(
      `key kind must be "aes", "ec-private" or "ec-public", got ${JSON.stringify(kind)}`,
    );
  }
  return template;
}

const newId = (o: KeyOptions) => Buffer.from(o.id ?? crypto.getRandomValues(new Uint8Array(16)));

/** An AES key's template: label, id, token or session object, private, for encrypt and decrypt. */
function aesTemplate(label: string, id: Buffer, options: KeyOptions): pkcs11jsTypes.Template {
  return [
    ...KIND_TEMPLATE.aes,
    { type: pkcs11js.CKA_LABEL, value: label },
    { type: pkcs11js.CKA_ID, value: id },
    { type: pkcs11js.CKA_TOKEN, value: options.token ?? true },
    { type: pkcs11js.CKA_PRIVATE, value: true },
    { type: pkcs11js.CKA_ENCRYPT, value: true },
    { type: pkcs11js.CKA_DECRYPT, value: true },
  ];
}

/** Generates an AES-256 key for AES-GCM (`C_GenerateKey`), sensitive and never extractable. */
export function generateAesKey(p: Pkcs11, s: Buffer, options: KeyOptions): HsmKey {
  const label = checkLabel(options.label);
  const id = newId(options);
  const handle = call(
    "C_GenerateKey",
    () =>
      p.C_GenerateKey(s, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
        ...aesTemplate(label, id, options),
        { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
        { type: pkcs11js.CKA_SENSITIVE, value: true },
        { type: pkcs11js.CKA_EXTRACTABLE, value: false },
      ]),
  );
  return { handle, label, id: id.toString("hex"), kind: "aes" };
}

/** Creates an AES key of a known value (`C_CreateObject`), a token object unless `token: false`. */
export function createAesKey(p: Pkcs11, s: Buffer, value: Uint8Array, options: KeyOptions): HsmKey {
  const label = checkLabel(options.label);
  if (![16, 24, 32].includes(value?.length)) {
    throw new RangeError(`an AES key is 16, 24 or 32 bytes, got ${value?.length}`);
  }
  const id = newId(options);
  const handle = call("C_CreateObject", () =>
    p.C_CreateObject(s, [
      ...aesTemplate(label, id, options),
      { type: pkcs11js.CKA_VALUE, value: Buffer.from(value) },
    ]));
  return { handle, label, id: id.toString("hex"), kind: "aes" };
}

/** Generates an ECDSA P-256 key pair (`C_GenerateKeyPair`). */
export function generateEcKeyPair(p: Pkcs11, s: Buffer, options: KeyOptions): HsmKeyPair {
  const label = checkLabel(options.label);
  const id = newId(options);
  const token = options.token ?? true;
  const common = [
    { type: pkcs11js.CKA_LABEL, value: label },
    { type: pkcs11js.CKA_ID, value: id },
    { type: pkcs11js.CKA_TOKEN, value: token },
  ];
  const pair = call(
    "C_GenerateKeyPair",
    () =>
      p.C_GenerateKeyPair(s, { mechanism: pkcs11js.CKM_EC_KEY_PAIR_GEN }, [
        ...KIND_TEMPLATE["ec-public"],
        ...common,
        { type: pkcs11js.CKA_EC_PARAMS, value: P256_PARAMS },
        { type: pkcs11js.CKA_VERIFY, value: true },
      ], [
        ...KIND_TEMPLATE["ec-private"],
        ...common,
        { type: pkcs11js.CKA_PRIVATE, value: true },
        { type: pkcs11js.CKA_SENSITIVE, value: true },
        { type: pkcs11js.CKA_EXTRACTABLE, value: false },
        { type: pkcs11js.CKA_SIGN, value: true },
      ]),
  );
  const hex = id.toString("hex");
  return {
    privateKey: { handle: pair.privateKey, label, id: hex, kind: "ec-private" },
    publicKey: { handle: pair.publicKey, label, id: hex, kind: "ec-public" },
  };
}

function findHandles(p: Pkcs11, s: Buffer, template: pkcs11jsTypes.Template): Buffer[] {
  call("C_FindObjectsInit", () => p.C_FindObjectsInit(s, template));
  try {
    const found: Buffer[] = [];
    for (;;) {
      const batch = call("C_FindObjects", () => p.C_FindObjects(s, 64));
      found.push(...batch);
      if (batch.length < 64) return found;
    }
  } finally {
    try {
      p.C_FindObjectsFinal(s);
    } catch {
      // The session is gone; the error above (if any) says so.
    }
  }
}

function attribute(p: Pkcs11, s: Buffer, handle: Buffer, type: number): Buffer {
  const [attr] = call("C_GetAttributeValue", () => p.C_GetAttributeValue(s, handle, [{ type }]));
  return attr.value as Buffer;
}

/**
 * Every key of this kind with this label: token and session objects, or
 * only token objects with `tokenOnly` (their handles stay valid in every
 * session, so they are the ones that may be cached).
 */
export function findKeys(
  p: Pkcs11,
  s: Buffer,
  label: string,
  kind: HsmKeyKind,
  tokenOnly: boolean,
): HsmKey[] {
  checkLabel(label);
  const handles = findHandles(p, s, [
    ...kindTemplate(kind),
    { type: pkcs11js.CKA_LABEL, value: label },
    ...(tokenOnly ? [{ type: pkcs11js.CKA_TOKEN, value: true }] : []),
  ]);
  return handles.map((handle) => ({
    handle,
    label,
    id: attribute(p, s, handle, pkcs11js.CKA_ID).toString("hex"),
    kind,
  }));
}

/** The key of this kind with this `CKA_ID` (hex), or `undefined`. */
export function findKeyById(
  p: Pkcs11,
  s: Buffer,
  id: string,
  kind: HsmKeyKind,
  tokenOnly: boolean,
): HsmKey | undefined {
  checkKeyId(id);
  const [handle] = findHandles(p, s, [
    ...kindTemplate(kind),
    { type: pkcs11js.CKA_ID, value: Buffer.from(id, "hex") },
    ...(tokenOnly ? [{ type: pkcs11js.CKA_TOKEN, value: true }] : []),
  ]);
  if (handle === undefined) return undefined;
  const label = attribute(p, s, handle, pkcs11js.CKA_LABEL).toString();
  return { handle, label, id: id.toLowerCase(), kind };
}

/**
 * Every token key of this kind, as `"<kind>:<CKA_ID hex>:<label>"`: what
 * must be the same on every member of a group.
 */
export function tokenKeyNames(p: Pkcs11, s: Buffer, kind: HsmKeyKind): string[] {
  const handles = findHandles(p, s, [
    ...kindTemplate(kind),
    { type: pkcs11js.CKA_TOKEN, value: true },
  ]);
  return handles.map((handle) => {
    const id = attribute(p, s, handle, pkcs11js.CKA_ID).toString("hex");
    return `${kind}:${id}:${attribute(p, s, handle, pkcs11js.CKA_LABEL).toString()}`;
  });
}

/** One of `keys` at random (keys rotate: add one under the label, retire the old later). */
export function pickRandom(keys: readonly HsmKey[]): HsmKey | undefined {
  return keys.length === 0 ? undefined : keys[Math.floor(Math.random() * keys.length)];
}

/** The uncompressed point (`04 ‖ X ‖ Y`, 65 bytes) of an EC public key. */
export function exportEcPublicKey(p: Pkcs11, s: Buffer, key: HsmKey): Uint8Array<ArrayBuffer> {
  needKind(key, "ec-public", "exportEcPublicKey");
  let point = attribute(p, s, key.handle, pkcs11js.CKA_EC_POINT);
  // CKA_EC_POINT is DER: OCTET STRING (0x04, length 0x41) around the point.
  if (point.length === 67 && point[0] === 0x04 && point[1] === 0x41) point = point.subarray(2);
  if (point.length !== 65 || point[0] !== 0x04) {
    throw new HsmError(`unexpected CKA_EC_POINT of ${point.length} bytes`, {
      operation: "exportEcPublicKey",
    });
  }
  return new Uint8Array(point);
}

/** Destroys a key object (`C_DestroyObject`). */
export function destroyKey(p: Pkcs11, s: Buffer, key: HsmKey): void {
  call("C_DestroyObject", () => p.C_DestroyObject(s, key.handle));
}

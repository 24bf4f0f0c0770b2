/**
 * Keys on the token: generate, create from a known value, find by label
 * (including "a random one among those with this label", which is how key
 * rotation works: add a key with the same label, retire the old one later),
 * export an EC public key, destroy.
 *
 * Keys meant to outlive a session are token objects (the default here).
 * Session objects die with the session that made them, so their handles
 * must never be cached beyond it.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import pkcs11js from "pkcs11js";
import { HsmError, toHsmError } from "./errors.ts";
import type { SessionHandle } from "./handle.ts";

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

/** DER of the P-256 curve OID (1.2.840.10045.3.1.7), `CKA_EC_PARAMS`. */
const P256_PARAMS = Buffer.from("06082a8648ce3d030107", "hex");

function newId(options: KeyOptions): Buffer {
  return Buffer.from(options.id ?? crypto.getRandomValues(new Uint8Array(16)));
}

function checkLabel(label: unknown): string {
  if (typeof label !== "string" || label.length === 0) {
    throw new TypeError(`key label must be a non-empty string, got ${JSON.stringify(label)}`);
  }
  return label;
}

const KIND_TEMPLATE: Record<HsmKeyKind, pkcs11js.Template> = {
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

/** Generates an AES-256 key for AES-GCM (`C_GenerateKey`, off the event loop). */
export async function generateAesKey(session: SessionHandle, options: KeyOptions): Promise<HsmKey> {
  const label = checkLabel(options.label);
  const id = newId(options);
  const template: pkcs11js.Template = [
    ...KIND_TEMPLATE.aes,
    { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
    { type: pkcs11js.CKA_LABEL, value: label },
    { type: pkcs11js.CKA_ID, value: id },
    { type: pkcs11js.CKA_TOKEN, value: options.token ?? true },
    { type: pkcs11js.CKA_PRIVATE, value: true },
    { type: pkcs11js.CKA_SENSITIVE, value: true },
    { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    { type: pkcs11js.CKA_ENCRYPT, value: true },
    { type: pkcs11js.CKA_DECRYPT, value: true },
  ];
  const mechanism = { mechanism: pkcs11js.CKM_AES_KEY_GEN };
  try {
    const handle = await session.module.pkcs11.C_GenerateKeyAsync(
      session.handle,
      mechanism,
      template,
    );
    return { handle, label, id: id.toString("hex"), kind: "aes" };
  } catch (error) {
    throw toHsmError(error, "C_GenerateKey");
  }
}

/**
 * Creates an AES key of a known value (`C_CreateObject`): for importing
 * keys and for checking the HSM against an independent implementation.
 * A token object (found by `Hsm.encrypt(label)`) unless `token: false`.
 */
export function createAesKey(
  session: SessionHandle,
  value: Uint8Array,
  options: KeyOptions,
): HsmKey {
  const label = checkLabel(options.label);
  if (![16, 24, 32].includes(value.length)) {
    throw new RangeError(`an AES key is 16, 24 or 32 bytes, got ${value.length}`);
  }
  const id = newId(options);
  try {
    const handle = session.module.pkcs11.C_CreateObject(session.handle, [
      ...KIND_TEMPLATE.aes,
      { type: pkcs11js.CKA_VALUE, value: Buffer.from(value) },
      { type: pkcs11js.CKA_LABEL, value: label },
      { type: pkcs11js.CKA_ID, value: id },
      { type: pkcs11js.CKA_TOKEN, value: options.token ?? true },
      { type: pkcs11js.CKA_PRIVATE, value: true },
      { type: pkcs11js.CKA_ENCRYPT, value: true },
      { type: pkcs11js.CKA_DECRYPT, value: true },
    ]);
    return { handle, label, id: id.toString("hex"), kind: "aes" };
  } catch (error) {
    throw toHsmError(error, "C_CreateObject");
  }
}

/** Generates an ECDSA P-256 key pair (`C_GenerateKeyPair`, off the event loop). */
export async function generateEcKeyPair(
  session: SessionHandle,
  options: KeyOptions,
): Promise<HsmKeyPair> {
  const label = checkLabel(options.label);
  const id = newId(options);
  const token = options.token ?? true;
  const publicTemplate: pkcs11js.Template = [
    ...KIND_TEMPLATE["ec-public"],
    { type: pkcs11js.CKA_EC_PARAMS, value: P256_PARAMS },
    { type: pkcs11js.CKA_LABEL, value: label },
    { type: pkcs11js.CKA_ID, value: id },
    { type: pkcs11js.CKA_TOKEN, value: token },
    { type: pkcs11js.CKA_VERIFY, value: true },
  ];
  const privateTemplate: pkcs11js.Template = [
    ...KIND_TEMPLATE["ec-private"],
    { type: pkcs11js.CKA_LABEL, value: label },
    { type: pkcs11js.CKA_ID, value: id },
    { type: pkcs11js.CKA_TOKEN, value: token },
    { type: pkcs11js.CKA_PRIVATE, value: true },
    { type: pkcs11js.CKA_SENSITIVE, value: true },
    { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    { type: pkcs11js.CKA_SIGN, value: true },
  ];
  try {
    const pair = await session.module.pkcs11.C_GenerateKeyPairAsync(
      session.handle,
      { mechanism: pkcs11js.CKM_EC_KEY_PAIR_GEN },
      publicTemplate,
      privateTemplate,
    );
    const hex = id.toString("hex");
    return {
      privateKey: { handle: pair.privateKey, label, id: hex, kind: "ec-private" },
      publicKey: { handle: pair.publicKey, label, id: hex, kind: "ec-public" },
    };
  } catch (error) {
    throw toHsmError(error, "C_GenerateKeyPair");
  }
}

function findHandles(session: SessionHandle, template: pkcs11js.Template): Buffer[] {
  const { pkcs11 } = session.module;
  const handle = session.handle;
  try {
    pkcs11.C_FindObjectsInit(handle, template);
  } catch (error) {
    throw toHsmError(error, "C_FindObjectsInit");
  }
  try {
    const found: Buffer[] = [];
    for (;;) {
      const batch = pkcs11.C_FindObjects(handle, 64);
      found.push(...batch);
      if (batch.length < 64) return found;
    }
  } catch (error) {
    throw toHsmError(error, "C_FindObjects");
  } finally {
    try {
      pkcs11.C_FindObjectsFinal(handle);
    } catch {
      // The session is gone; the error above (if any) says so.
    }
  }
}

function readId(session: SessionHandle, handle: Buffer): string {
  try {
    const [attr] = session.module.pkcs11.C_GetAttributeValue(session.handle, handle, [
      { type: pkcs11js.CKA_ID },
    ]);
    return attr.value.toString("hex");
  } catch (error) {
    throw toHsmError(error, "C_GetAttributeValue");
  }
}

/**
 * Every key of this kind with this label: token and session objects, or
 * only token objects with `tokenOnly` (their handles stay valid in every
 * session, so they are the ones that may be cached).
 */
export function findKeys(
  session: SessionHandle,
  label: string,
  kind: HsmKeyKind,
  tokenOnly = false,
): HsmKey[] {
  checkLabel(label);
  const handles = findHandles(session, [
    ...kindTemplate(kind),
    { type: pkcs11js.CKA_LABEL, value: label },
    ...(tokenOnly ? [{ type: pkcs11js.CKA_TOKEN, value: true }] : []),
  ]);
  return handles.map((handle) => ({ handle, label, id: readId(session, handle), kind }));
}

/**
 * One of `keys`, picked at random, or `undefined` when there is none.
 * Spreading use over every key with a label lets keys rotate without a
 * restart: add a key with the label, retire the old one later.
 */
export function pickRandom(keys: readonly HsmKey[]): HsmKey | undefined {
  return keys.length === 0 ? undefined : keys[Math.floor(Math.random() * keys.length)];
}

/** The template that finds keys of `kind`; a TypeError naming the kinds for anything else. */
function kindTemplate(kind: HsmKeyKind): pkcs11js.Template {
  const template = Object.hasOwn(KIND_TEMPLATE, kind) ? KIND_TEMPLATE[kind] : undefined;
  if (template === undefined) {
    throw new TypeError(
      `key kind must be "aes", "ec-private" or "ec-public", got ${JSON.stringify(kind)}`,
    );
  }
  return template;
}

/** One key picked at random among those of this kind with this label, or `undefined`. */
export function findRandomKey(
  session: SessionHandle,
  label: string,
  kind: HsmKeyKind = "aes",
): HsmKey | undefined {
  return pickRandom(findKeys(session, label, kind));
}

/** Throws a TypeError unless `id` is a non-empty even-length hex string (a `CKA_ID`). */
export function checkKeyId(id: unknown): asserts id is string {
  if (typeof id !== "string" || !/^([0-9a-f]{2})+$/i.test(id)) {
    throw new TypeError(`key id must be hex, got ${JSON.stringify(id)}`);
  }
}

/** The key of this kind with this `CKA_ID` (hex), or `undefined` (only token objects with `tokenOnly`). */
export function findKeyById(
  session: SessionHandle,
  id: string,
  kind: HsmKeyKind = "aes",
  tokenOnly = false,
): HsmKey | undefined {
  checkKeyId(id);
  const [handle] = findHandles(session, [
    ...kindTemplate(kind),
    { type: pkcs11js.CKA_ID, value: Buffer.from(id, "hex") },
    ...(tokenOnly ? [{ type: pkcs11js.CKA_TOKEN, value: true }] : []),
  ]);
  if (handle === undefined) return undefined;
  let label: string;
  try {
    const [attr] = session.module.pkcs11.C_GetAttributeValue(session.handle, handle, [
      { type: pkcs11js.CKA_LABEL },
    ]);
    label = attr.value.toString();
  } catch (error) {
    throw toHsmError(error, "C_GetAttributeValue");
  }
  return { handle, label, id: id.toLowerCase(), kind };
}

/**
 * The uncompressed point (`04 ‖ X ‖ Y`, 65 bytes) of an EC public key:
 * import it in WebCrypto with `importKey("raw", ...)`.
 */
export function exportEcPublicKey(
  session: SessionHandle,
  publicKey: HsmKey,
): Uint8Array<ArrayBuffer> {
  if (publicKey.kind !== "ec-public") {
    throw new TypeError(`exportEcPublicKey needs an "ec-public" key, got "${publicKey.kind}"`);
  }
  let point: Buffer;
  try {
    [{ value: point }] = session.module.pkcs11.C_GetAttributeValue(
      session.handle,
      publicKey.handle,
      [{ type: pkcs11js.CKA_EC_POINT }],
    );
  } catch (error) {
    throw toHsmError(error, "C_GetAttributeValue");
  }
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
export function destroyKey(session: SessionHandle, key: HsmKey): void {
  try {
    session.module.pkcs11.C_DestroyObject(session.handle, key.handle);
  } catch (error) {
    throw toHsmError(error, "C_DestroyObject");
  }
}

/**
 * {@link HsmSession}: one pooled R/W serial session with the adapter's
 * operations as methods. A session runs one operation at a time; the pool
 * makes sure only one caller holds it.
 *
 * @module
 */
import type { Buffer } from "node:buffer";
import {
  aesGcmDecrypt,
  aesGcmEncrypt,
  ecdsaSign,
  ecdsaVerify,
  randomBytes,
  sha256,
} from "./crypto.ts";
import type { CryptoEngine } from "./engine.ts";
import { SessionHandle } from "./handle.ts";
import {
  createAesKey,
  destroyKey,
  exportEcPublicKey,
  findKeyById,
  findKeys,
  findRandomKey,
  generateAesKey,
  generateEcKeyPair,
  type HsmKey,
  type HsmKeyKind,
  type HsmKeyPair,
  type KeyOptions,
} from "./keys.ts";
import type { LoadedModule } from "./registry.ts";

/** A PKCS#11 session with typed operations. Get one from `Hsm.use()` or `Hsm.acquire()`. */
export class HsmSession extends SessionHandle {
  /** How this session's crypto calls are run (see `dispatch.ts`). */
  readonly engine: CryptoEngine;

  /** Opens a R/W serial session on `slot`. The pool does this; you rarely need to. */
  constructor(module: LoadedModule, slot: Buffer, engine: CryptoEngine) {
    super(module, slot);
    this.engine = engine;
  }

  /** Generates an AES-256 key (a token object unless `token: false`). */
  generateAesKey(options: KeyOptions): Promise<HsmKey> {
    return generateAesKey(this, options);
  }

  /** Creates an AES key of a known value (a token object unless `token: false`). */
  createAesKey(value: Uint8Array, options: KeyOptions): HsmKey {
    return createAesKey(this, value, options);
  }

  /** Generates an ECDSA P-256 key pair (token objects unless `token: false`). */
  generateEcKeyPair(options: KeyOptions): Promise<HsmKeyPair> {
    return generateEcKeyPair(this, options);
  }

  /** Every key of this kind with this label (only token objects with `tokenOnly`). */
  findKeys(label: string, kind: HsmKeyKind = "aes", tokenOnly = false): HsmKey[] {
    return findKeys(this, label, kind, tokenOnly);
  }

  /** A random key among those of this kind with this label, or `undefined`. */
  findRandomKey(label: string, kind: HsmKeyKind = "aes"): HsmKey | undefined {
    return findRandomKey(this, label, kind);
  }

  /** The key with this `CKA_ID` (hex), or `undefined` (only token objects with `tokenOnly`). */
  findKeyById(id: string, kind: HsmKeyKind = "aes", tokenOnly = false): HsmKey | undefined {
    return findKeyById(this, id, kind, tokenOnly);
  }

  /** The 65-byte uncompressed point of an EC public key. */
  exportEcPublicKey(publicKey: HsmKey): Uint8Array<ArrayBuffer> {
    return exportEcPublicKey(this, publicKey);
  }

  /** Destroys a key object. */
  destroyKey(key: HsmKey): void {
    destroyKey(this, key);
  }

  /** AES-GCM: returns `IV ‖ ciphertext ‖ tag` with a random 12-byte IV. */
  encrypt(key: HsmKey, plaintext: Uint8Array, aad?: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
    return aesGcmEncrypt(this, this.engine, key, plaintext, aad);
  }

  /** AES-GCM decryption of `IV ‖ ciphertext ‖ tag`. */
  decrypt(key: HsmKey, sealed: Uint8Array, aad?: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
    return aesGcmDecrypt(this, this.engine, key, sealed, aad);
  }

  /** ECDSA P-256/SHA-256 signature `r ‖ s` (64 bytes). */
  sign(privateKey: HsmKey, data: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
    return ecdsaSign(this, this.engine, privateKey, data);
  }

  /** Verifies an ECDSA P-256/SHA-256 signature. */
  verify(publicKey: HsmKey, data: Uint8Array, signature: Uint8Array): Promise<boolean> {
    return ecdsaVerify(this, this.engine, publicKey, data, signature);
  }

  /** SHA-256 computed by the HSM. */
  digest(data: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
    return sha256(this, this.engine, data);
  }

  /** Random bytes from the HSM. */
  random(length: number): Uint8Array<ArrayBuffer> {
    return randomBytes(this, length);
  }
}

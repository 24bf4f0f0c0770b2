/**
 * {@link HsmSession}: one R/W serial session with the adapter's operations
 * as methods, and {@link Session}, the class behind it.
 *
 * A session knows whether it is still ours: modules reuse session handle
 * numbers, so a session is closed at most once, refuses to be used
 * afterwards, and is marked dead (without calling the module) when the
 * module hands its number to a newer session or is initialised again.
 *
 * @module
 */
import type { Buffer } from "node:buffer";
import type pkcs11jsTypes from "pkcs11js";
import { call as callModule, HsmError } from "./errors.ts";
import type { Module, SessionHolder } from "./module.ts";
import * as ops from "./ops.ts";
import type { HsmKey, HsmKeyKind, HsmKeyPair, KeyOptions } from "./ops.ts";
import type { CallPlace, CryptoArgs, CryptoResult } from "./threads.ts";

/** A PKCS#11 session with typed operations. Get one from `Hsm.use()` or `Hsm.acquire()`. */
export interface HsmSession {
  /** A process-unique number for logs and events (not the PKCS#11 handle). */
  readonly id: number;
  /** The module: its path and pkcs11js binding, for calls the adapter does not wrap. */
  readonly module: { readonly path: string; readonly pkcs11: pkcs11jsTypes.PKCS11 };
  /** The slot the session was opened on. */
  readonly slot: Buffer;
  /** The raw PKCS#11 handle. Throws once the session is closed or dead. */
  readonly handle: Buffer;
  /** `true` once closed or found dead. */
  readonly closed: boolean;
  /** `C_GetSessionInfo`; throws an `HsmError` when the session is gone. */
  info(): pkcs11jsTypes.SessionInfo;
  /** Whether the session is open and sees a logged-in user. */
  isLoggedIn(): boolean;
  /** Generates an AES-256 key (a token object unless `token: false`). */
  generateAesKey(options: KeyOptions): Promise<HsmKey>;
  /** Creates an AES key of a known value (a token object unless `token: false`). */
  createAesKey(value: Uint8Array, options: KeyOptions): HsmKey;
  /** Generates an ECDSA P-256 key pair (token objects unless `token: false`). */
  generateEcKeyPair(options: KeyOptions): Promise<HsmKeyPair>;
  /** Every key of this kind with this label (only token objects with `tokenOnly`). */
  findKeys(label: string, kind?: HsmKeyKind, tokenOnly?: boolean): HsmKey[];
  /** A random key among those of this kind with this label, or `undefined`. */
  findRandomKey(label: string, kind?: HsmKeyKind): HsmKey | undefined;
  /** The key with this `CKA_ID` (hex), or `undefined` (only token objects with `tokenOnly`). */
  findKeyById(id: string, kind?: HsmKeyKind, tokenOnly?: boolean): HsmKey | undefined;
  /** The 65-byte uncompressed point of an EC public key. */
  exportEcPublicKey(publicKey: HsmKey): Uint8Array<ArrayBuffer>;
  /** Destroys a key object; the handle's key cache forgets it. */
  destroyKey(key: HsmKey): void;
  /** AES-GCM: `IV ‖ ciphertext ‖ tag` with a random 12-byte IV. */
  /** AES-GCM: `IV ‖ ciphertext ‖ tag` with a random 12-byte IV. */
  encrypt(key: HsmKey, plaintext: Uint8Array, aad?: Uint8Array): Promise<Uint8Array<ArrayBuffer>>;
  /** AES-GCM decryption of `IV ‖ ciphertext ‖ tag`. */
  decrypt(key: HsmKey, sealed: Uint8Array, aad?: Uint8Array): Promise<Uint8Array<ArrayBuffer>>;
  /** ECDSA P-256/SHA-256 signature `r ‖ s` (64 bytes). */
  sign(privateKey: HsmKey, data: Uint8Array): Promise<Uint8Array<ArrayBuffer>>;
  /** Verifies an ECDSA P-256/SHA-256 signature. */
  verify(publicKey: HsmKey, data: Uint8Array, signature: Uint8Array): Promise<boolean>;
  /** SHA-256 computed by the HSM. */
  digest(data: Uint8Array): Promise<Uint8Array<ArrayBuffer>>;
  /** Random bytes from the HSM. */
  random(length: number): Uint8Array<ArrayBuffer>;
}

/** `CKF_SERIAL_SESSION | CKF_RW_SESSION`. */
const RW_SERIAL = 0x4 | 0x2;
/** `CKS_RO_USER_FUNCTIONS` and `CKS_RW_USER_FUNCTIONS`: the session sees a logged-in user. */
const USER_STATES: ReadonlySet<number> = new Set([1, 3]);

let nextId = 1;

/** What a pooled session reports to its handle. */
export interface SessionHooks {
  /** Where its crypto calls run. */
  place: CallPlace;
  /** A key was destroyed through it. */
  keyDestroyed(key: HsmKey): void;
}

/** One R/W serial session of a module (`C_OpenSession` when made). */
export class Session implements HsmSession, SessionHolder {
  readonly id: number = nextId++;
  readonly module: Module;
  readonly slot: Buffer;
  readonly #hooks: SessionHooks | undefined;
  readonly #handle: Buffer;
  readonly #key: string;
  #state: "open" | "closed" | "dead" = "open";

  /** Opens a session on `slot`; `hooks` for a pooled one (the login's anchor has none). */
  constructor(module: Module, slot: Buffer, hooks?: SessionHooks) {
    this.#handle = callModule("C_OpenSession", () => module.pkcs11.C_OpenSession(slot, RW_SERIAL));
    this.module = module;
    this.slot = slot;
    this.#hooks = hooks;
    this.#key = this.#handle.toString("hex");
    module.sessions.get(this.#key)?.markDead(); // the number was reissued: its holder lost it
    module.sessions.set(this.#key, this);
  }

  get closed(): boolean {
    return this.#state !== "open";
  }

  get handle(): Buffer {
    if (this.#state !== "open") {
      throw new HsmError(`session ${this.id} is ${this.#state}; acquire another one`, {
        operation: "session",
      });
    }
    return this.#handle;
  }

  info(): pkcs11jsTypes.SessionInfo {
    const handle = this.handle;
    return callModule("C_GetSessionInfo", () => this.module.pkcs11.C_GetSessionInfo(handle));
  }

  isLoggedIn(): boolean {
    try {
      return USER_STATES.has(this.info().state);
    } catch {
      return false;
    }
  }

  /** Marks the session dead without calling the module. */
  markDead(): void {
    if (this.#state !== "open") return;
    this.#state = "dead";
    this.#forget();
  }

  /** `C_CloseSession`, at most once; ends its worker thread. Errors are ignored. */
  close(): void {
    this.#hooks?.place.forget(this);
    if (this.#state !== "open") return;
    this.#state = "closed";
    this.#forget();
    try {
      this.module.pkcs11.C_CloseSession(this.#handle);
    } catch {
      // Closed behind our back (C_CloseAllSessions, token removed): nothing to do.
    }
  }

  #forget(): void {
    if (this.module.sessions.get(this.#key) === this) this.module.sessions.delete(this.#key);
  }

  generateAesKey(options: KeyOptions): Promise<HsmKey> {
    return settled(() => ops.generateAesKey(this.module.pkcs11, this.handle, options));
  }

  createAesKey(value: Uint8Array, options: KeyOptions): HsmKey {
    return ops.createAesKey(this.module.pkcs11, this.handle, value, options);
  }

  generateEcKeyPair(options: KeyOptions): Promise<HsmKeyPair> {
    return settled(() => ops.generateEcKeyPair(this.module.pkcs11, this.handle, options));
  }

  findKeys(label: string, kind: HsmKeyKind = "aes", tokenOnly = false): HsmKey[] {
    return ops.findKeys(this.module.pkcs11, this.handle, label, kind, tokenOnly);
  }

  findRandomKey(label: string, kind: HsmKeyKind = "aes"): HsmKey | undefined {
    return ops.pickRandom(this.findKeys(label, kind));
  }

  findKeyById(id: string, kind: HsmKeyKind = "aes", tokenOnly = false): HsmKey | undefined {
    return ops.findKeyById(this.module.pkcs11, this.handle, id, kind, tokenOnly);
  }

  exportEcPublicKey(publicKey: HsmKey): Uint8Array<ArrayBuffer> {
    return ops.exportEcPublicKey(this.module.pkcs11, this.handle, publicKey);
  }

  destroyKey(key: HsmKey): void {
    ops.destroyKey(this.module.pkcs11, this.handle, key);
    this.#hooks?.keyDestroyed(key);
  }

  encrypt(key: HsmKey, plaintext: Uint8Array, aad?: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
    return this.#crypto("encrypt", [key?.handle, plaintext, aad], () => {
      ops.needKind(key, "aes", "aesGcmEncrypt");
      ops.needBytes(plaintext, "plaintext");
    }) as Promise<Uint8Array<ArrayBuffer>>;
  }

  decrypt(key: HsmKey, sealed: Uint8Array, aad?: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
    return this.#crypto("decrypt", [key?.handle, sealed, aad], () => {
      ops.needKind(key, "aes", "aesGcmDecrypt");
      ops.checkSealed(sealed);
    }) as Promise<Uint8Array<ArrayBuffer>>;
  }

  sign(privateKey: HsmKey, data: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
    return this.#crypto("sign", [privateKey?.handle, data], () => {
      ops.needKind(privateKey, "ec-private", "ecdsaSign");
      ops.needBytes(data, "data");
    }) as Promise<Uint8Array<ArrayBuffer>>;
  }

  verify(publicKey: HsmKey, data: Uint8Array, signature: Uint8Array): Promise<boolean> {
    return this.#crypto("verify", [publicKey?.handle, data, signature], () => {
      ops.needKind(publicKey, "ec-public", "ecdsaVerify");
      ops.needBytes(data, "data");
      ops.needBytes(signature, "signature");
    });
  }

  digest(data: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
    return this.#crypto("digest", [data], () => ops.needBytes(data, "data")) as Promise<
      Uint8Array<ArrayBuffer>
    >;
  }

  random(length: number): Uint8Array<ArrayBuffer> {
    return ops.random(this.module.pkcs11, this.handle, length);
  }

  /** Checks the input (`check` throws), then runs `op` where the handle's rule says. */
  #crypto<K extends ops.CryptoOp>(
    op: K,
    args: CryptoArgs<K>,
    check: () => void,
  ): Promise<CryptoResult<K>> {
    const place = this.#hooks!.place; // pooled sessions only: the login's runs no crypto
    let session: Buffer;
    try {
      check();
      session = this.handle;
    } catch (error) {
      return Promise.reject(error);
    }
    const call = { pkcs11: this.module.pkcs11, library: this.module.path, session, op, args };
    return place.run(this, call, place.deadline(this));
  }
}

function settled<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * {@link HsmOps}: crypto operations that need no session of the caller's.
 * With the worker engine they are queued and run in batches (see
 * `batch.ts`), each as one whole job on the worker (the AES-GCM IV and the
 * ECDSA hash are made there too); with the other engines each leases a
 * session of its own when it is alone, and under load runs on session
 * loops (`session_loops.ts`: a lease per loop, not per operation); the
 * default engine batches only under load (see `engine_auto.ts`).
 *
 * A key handle that turns out stale (SoftHSM renumbers private objects
 * when the token is logged in again) is found again by its `CKA_ID` and the
 * operation runs once more with it: callers can hold keys across a
 * repaired logout.
 *
 * @module
 */
import pkcs11js from "pkcs11js";
import type { Pool } from "../../mod.ts";
import type { AcquireOptions } from "../../pool/types.ts";
import { BatchRunner } from "./batch.ts";
import { SessionLoops } from "./session_loops.ts";
import { needBytes, needKind } from "./crypto.ts";
import type { WireJob, WorkerEngine } from "./dispatch.ts";
import { DIGEST, OPEN_GCM, SEAL_GCM, SIGN_SHA256, VERIFY_SHA256 } from "./dispatch_wire.ts";
import type { CryptoEngine } from "./engine.ts";
import { isSessionGone, isStaleHandle } from "./errors.ts";
import { checkSealed, GCM_IV_BYTES, GCM_TAG_BITS, gcmDecryptError, sealedLength } from "./gcm.ts";
import type { HsmKey } from "./keys.ts";
import type { HsmSession } from "./session.ts";

/**
 * Crypto on keys you already hold; the handle finds a session. `options`
 * bound the wait for one (`signal`, `timeoutMs`), as in `use()`.
 */
export interface HsmOps {
  /** AES-GCM: `IV ‖ ciphertext ‖ tag` with a random 12-byte IV. */
  encrypt(
    key: HsmKey,
    plaintext: Uint8Array,
    aad?: Uint8Array,
    options?: AcquireOptions,
  ): Promise<Uint8Array<ArrayBuffer>>;
  /** AES-GCM decryption of `IV ‖ ciphertext ‖ tag`. */
  decrypt(
    key: HsmKey,
    sealed: Uint8Array,
    aad?: Uint8Array,
    options?: AcquireOptions,
  ): Promise<Uint8Array<ArrayBuffer>>;
  /** ECDSA P-256/SHA-256 signature `r ‖ s`. */
  sign(
    privateKey: HsmKey,
    data: Uint8Array,
    options?: AcquireOptions,
  ): Promise<Uint8Array<ArrayBuffer>>;
  /** Verifies an ECDSA P-256/SHA-256 signature. */
  verify(
    publicKey: HsmKey,
    data: Uint8Array,
    signature: Uint8Array,
    options?: AcquireOptions,
  ): Promise<boolean>;
  /** SHA-256 computed by the HSM. */
  digest(data: Uint8Array, options?: AcquireOptions): Promise<Uint8Array<ArrayBuffer>>;
}

/** Runs `fn` on a pooled session (the handle's `use`, with its re-login). */
export type SessionUse = <T>(
  fn: (session: HsmSession) => Promise<T>,
  options?: AcquireOptions,
) => Promise<T>;

/** Finds a key again after its handle went stale. */
export type KeyRefind = (key: HsmKey, options?: AcquireOptions) => Promise<HsmKey>;

/**
 * The ops of a handle: an op that finds no other in flight takes a lease
 * of its own (a lone caller has nothing to share), except on the
 * `"workers"` engine, which always batches; under load, ops are batched
 * onto worker threads, or run on session loops on the other engines.
 */
export class Ops implements HsmOps {
  readonly #pool: Pool<HsmSession>;
  readonly #runner: BatchRunner | undefined;
  readonly #loops: SessionLoops | undefined;
  readonly #byLoad: boolean;
  readonly #use: SessionUse;
  readonly #refind: KeyRefind;
  readonly #refusal: () => unknown;
  /** Ops started and not finished, for the engines that choose by load. */
  #active = 0;

  /**
   * Ops on `pool`'s sessions through `engine`. `refusal` is the handle's
   * refused-PIN error, if any: what every failed op reports instead.
   */
  constructor(
    pool: Pool<HsmSession>,
    engine: CryptoEngine,
    use: SessionUse,
    refind: KeyRefind,
    refusal: () => unknown,
  ) {
    const workers = engine as WorkerEngine;
    this.#pool = pool;
    const batching = workers.batching === true;
    this.#runner = batching ? new BatchRunner(pool, workers) : undefined;
    this.#loops = batching ? undefined : new SessionLoops(pool);
    this.#byLoad = !batching || workers.byLoad === true;
    this.#use = use;
    this.#refind = refind;
    this.#refusal = refusal;
  }

  /** Makes queued and future batched ops fail with `error` (the handle is closing). */
  close(error: unknown): void {
    this.#runner?.close(error);
    this.#loops?.close(error);
  }

  /** Whether the next op takes a lease of its own: nothing else is in flight to share with. */
  #alone(): boolean {
    return this.#byLoad && this.#active === 0;
  }

  /**
   * Runs one operation with `key`: on a leased session, or as a batch job.
   * A stale key handle is found again by its `CKA_ID`, and a session closed
   * behind the pool's back is replaced: either way the operation runs again.
   */
  async #run<T>(
    key: HsmKey,
    options: AcquireOptions | undefined,
    onSession: (session: HsmSession, key: HsmKey) => Promise<T>,
    job: (key: HsmKey) => WireJob,
    mapError?: (error: unknown) => unknown,
  ): Promise<T> {
    const refusal = this.#refusal(); // fail at once: no session is even asked for
    if (refusal !== undefined) throw refusal;
    const runner = this.#runner, loops = this.#loops;
    const once = this.#alone()
      ? (k: HsmKey) => this.#use((s) => onSession(s, k), options)
      : loops !== undefined
      ? (k: HsmKey) => loops.submit((s) => onSession(s, k), options)
      : (k: HsmKey) => runner!.submit<T>(job(k), options, mapError);
    this.#active++;
    try {
      return await once(key);
    } catch (error) {
      return await this.#again(error, key, options, once);
    } finally {
      this.#active--;
    }
  }

  /** After a failed op: runs it again where that can help, else rethrows. */
  async #again<T>(
    error: unknown,
    key: HsmKey,
    options: AcquireOptions | undefined,
    once: (key: HsmKey) => Promise<T>,
  ): Promise<T> {
    // Each closed session is destroyed when met (isFatal): after at most
    // `max` of them the pool makes a new one, logged in again if need be.
    let sessionsLeft = this.#pool.stats().max;
    let refound = false;
    for (;;) {
      const refusal = this.#refusal(); // the pool's CircuitOpenError would hide it
      if (refusal !== undefined) throw refusal;
      if (isStaleHandle(error) && !refound) {
        key = await this.#refind(key, options);
        refound = true;
      } else if (!isSessionGone(error) || sessionsLeft-- <= 0) throw error;
      try {
        return await once(key);
      } catch (next) {
        error = next;
      }
    }
  }

  async encrypt(key: HsmKey, plaintext: Uint8Array, aad?: Uint8Array, options?: AcquireOptions) {
    needKind(key, "aes", "aesGcmEncrypt");
    needBytes(plaintext, "plaintext");
    return await this.#run(key, options, (s, k) => s.encrypt(k, plaintext, aad), (k) => ({
      kind: SEAL_GCM,
      mechanism: pkcs11js.CKM_AES_GCM,
      gcm: { aad, tagBits: GCM_TAG_BITS },
      key: k.handle,
      input: plaintext,
      outLength: sealedLength(plaintext.length),
    }));
  }

  async decrypt(key: HsmKey, sealed: Uint8Array, aad?: Uint8Array, options?: AcquireOptions) {
    needKind(key, "aes", "aesGcmDecrypt");
    checkSealed(sealed);
    return await this.#run(key, options, (s, k) => s.decrypt(k, sealed, aad), (k) => ({
      kind: OPEN_GCM,
      mechanism: pkcs11js.CKM_AES_GCM,
      gcm: { aad, tagBits: GCM_TAG_BITS },
      key: k.handle,
      input: sealed,
      outLength: sealed.length - GCM_IV_BYTES,
    }), gcmDecryptError);
  }

  async sign(key: HsmKey, data: Uint8Array, options?: AcquireOptions) {
    needKind(key, "ec-private", "ecdsaSign");
    needBytes(data, "data");
    return await this.#run(key, options, (s, k) => s.sign(k, data), (k) => ({
      kind: SIGN_SHA256,
      mechanism: pkcs11js.CKM_ECDSA,
      key: k.handle,
      input: data,
      outLength: 64,
    }));
  }

  async verify(key: HsmKey, data: Uint8Array, signature: Uint8Array, options?: AcquireOptions) {
    needKind(key, "ec-public", "ecdsaVerify");
    needBytes(data, "data");
    needBytes(signature, "signature");
    return await this.#run(key, options, (s, k) => s.verify(k, data, signature), (k) => ({
      kind: VERIFY_SHA256,
      mechanism: pkcs11js.CKM_ECDSA,
      key: k.handle,
      input: data,
      signature,
      outLength: 0,
    }));
  }

  async digest(data: Uint8Array, options?: AcquireOptions) {
    needBytes(data, "data");
    const refusal = this.#refusal();
    if (refusal !== undefined) throw refusal;
    const runner = this.#runner;
    if (this.#alone()) return await this.#use((s) => s.digest(data), options);
    this.#active++;
    try {
      if (runner === undefined) return await this.#loops!.submit((s) => s.digest(data), options);
      return await runner.submit<Uint8Array<ArrayBuffer>>({
        kind: DIGEST,
        mechanism: pkcs11js.CKM_SHA256,
        key: null,
        input: data,
        outLength: 32,
      }, options);
    } catch (error) {
      throw this.#refusal() ?? error;
    } finally {
      this.#active--;
    }
  }
}

/**
 * {@link HsmOps}: crypto operations that need no session of the caller's.
 * With the worker engine they are queued and run in batches (see
 * `batch.ts`), each as one whole job on the worker (the AES-GCM IV and the
 * ECDSA hash are made there too); with the other engines each leases a
 * session of its own.
 *
 * @module
 */
import pkcs11js from "pkcs11js";
import type { Pool } from "../../mod.ts";
import { type BatchJob, BatchRunner } from "./batch.ts";
import {
  checkSealed,
  GCM_IV_BYTES,
  GCM_TAG_BYTES,
  gcmDecryptError,
  needBytes,
  needKind,
} from "./crypto.ts";
import type { WireResult, WorkerEngine } from "./dispatch.ts";
import { DIGEST, OPEN_GCM, SEAL_GCM, SIGN_SHA256, VERIFY_SHA256 } from "./dispatch_wire.ts";
import type { CryptoEngine } from "./engine.ts";
import type { HsmKey } from "./keys.ts";
import type { HsmSession } from "./session.ts";

/** Crypto on keys you already hold; the handle finds a session. */
export interface HsmOps {
  /** AES-GCM: `IV ‖ ciphertext ‖ tag` with a random 12-byte IV. */
  encrypt(key: HsmKey, plaintext: Uint8Array, aad?: Uint8Array): Promise<Uint8Array<ArrayBuffer>>;
  /** AES-GCM decryption of `IV ‖ ciphertext ‖ tag`. */
  decrypt(key: HsmKey, sealed: Uint8Array, aad?: Uint8Array): Promise<Uint8Array<ArrayBuffer>>;
  /** ECDSA P-256/SHA-256 signature `r ‖ s`. */
  sign(privateKey: HsmKey, data: Uint8Array): Promise<Uint8Array<ArrayBuffer>>;
  /** Verifies an ECDSA P-256/SHA-256 signature. */
  verify(publicKey: HsmKey, data: Uint8Array, signature: Uint8Array): Promise<boolean>;
  /** SHA-256 computed by the HSM. */
  digest(data: Uint8Array): Promise<Uint8Array<ArrayBuffer>>;
}

const TAG_BITS = GCM_TAG_BYTES * 8;

/**
 * Makes the ops of a handle: batched on the worker engine, one lease each
 * otherwise. `close(error)` makes the batched ones fail with `error` from
 * then on (the handle calls it as it closes).
 */
export function createOps(
  pool: Pool<HsmSession>,
  engine: CryptoEngine,
  use: <T>(fn: (session: HsmSession) => Promise<T>) => Promise<T>,
): HsmOps & { close(error: unknown): void } {
  if ((engine as WorkerEngine).batching === true) return batchedOps(pool, engine as WorkerEngine);
  return {
    close() {},
    encrypt: (key, plaintext, aad) => use((s) => s.encrypt(key, plaintext, aad)),
    decrypt: (key, sealed, aad) => use((s) => s.decrypt(key, sealed, aad)),
    sign: (key, data) => use((s) => s.sign(key, data)),
    verify: (key, data, signature) => use((s) => s.verify(key, data, signature)),
    digest: (data) => use((s) => s.digest(data)),
  };
}

function batchedOps(
  pool: Pool<HsmSession>,
  engine: WorkerEngine,
): HsmOps & { close(error: unknown): void } {
  const runner = new BatchRunner(pool, engine);
  /** Queues a job; `map` turns a failure into the caller's error. */
  const submit = <T>(job: Omit<BatchJob, "settle">, map?: (error: unknown) => unknown) => {
    const { promise, resolve, reject } = Promise.withResolvers<T>();
    (job as BatchJob).settle = (r: WireResult) => {
      if (r.ok) resolve(r.value as T);
      else reject(map ? map(r.error) : r.error);
    };
    runner.submit(job as BatchJob);
    return promise;
  };
  return {
    close: (error) => runner.close(error),
    encrypt(key, plaintext, aad) {
      try {
        needKind(key, "aes", "aesGcmEncrypt");
        needBytes(plaintext, "plaintext");
      } catch (error) {
        return Promise.reject(error);
      }
      return submit({
        kind: SEAL_GCM,
        mechanism: pkcs11js.CKM_AES_GCM,
        gcm: { aad, tagBits: TAG_BITS },
        key: key.handle,
        input: plaintext,
        outLength: GCM_IV_BYTES + plaintext.length + GCM_TAG_BYTES,
      });
    },
    decrypt(key, sealed, aad) {
      try {
        needKind(key, "aes", "aesGcmDecrypt");
        checkSealed(sealed);
      } catch (error) {
        return Promise.reject(error);
      }
      return submit({
        kind: OPEN_GCM,
        mechanism: pkcs11js.CKM_AES_GCM,
        gcm: { aad, tagBits: TAG_BITS },
        key: key.handle,
        input: sealed,
        outLength: sealed.length - GCM_IV_BYTES,
      }, gcmDecryptError);
    },
    sign(key, data) {
      try {
        needKind(key, "ec-private", "ecdsaSign");
        needBytes(data, "data");
      } catch (error) {
        return Promise.reject(error);
      }
      return submit({
        kind: SIGN_SHA256,
        mechanism: pkcs11js.CKM_ECDSA,
        key: key.handle,
        input: data,
        outLength: 64,
      });
    },
    verify(key, data, signature) {
      try {
        needKind(key, "ec-public", "ecdsaVerify");
        needBytes(data, "data");
        needBytes(signature, "signature");
      } catch (error) {
        return Promise.reject(error);
      }
      return submit({
        kind: VERIFY_SHA256,
        mechanism: pkcs11js.CKM_ECDSA,
        key: key.handle,
        input: data,
        signature,
        outLength: 0,
      });
    },
    digest(data) {
      try {
        needBytes(data, "data");
      } catch (error) {
        return Promise.reject(error);
      }
      return submit({
        kind: DIGEST,
        mechanism: pkcs11js.CKM_SHA256,
        key: null,
        input: data,
        outLength: 32,
      });
    },
  };
}

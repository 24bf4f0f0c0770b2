/**
 * {@link HsmOps}: crypto operations that need no session of the caller's.
 * The handle picks a pooled session for each; with a batching engine (the
 * worker engine of `dispatch.ts`) operations are queued and run in batches
 * (see `batch.ts`), otherwise each leases a session of its own.
 *
 * @module
 */
import type { Pool } from "../../mod.ts";
import { BatchRunner } from "./batch.ts";
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

/** Makes the ops of a handle: batched when the engine can, one lease each otherwise. */
export function createOps(
  pool: Pool<HsmSession>,
  engine: CryptoEngine,
  use: <T>(fn: (session: HsmSession) => Promise<T>) => Promise<T>,
): HsmOps {
  const { batching, threads } = engine as { batching?: boolean; threads?: number };
  const run: <T>(fn: (session: HsmSession) => Promise<T>) => Promise<T> = batching
    ? ((runner) => (fn) => runner.submit(fn))(new BatchRunner(pool, threads ?? 1))
    : use;
  return {
    encrypt: (key, plaintext, aad) => run((s) => s.encrypt(key, plaintext, aad)),
    decrypt: (key, sealed, aad) => run((s) => s.decrypt(key, sealed, aad)),
    sign: (key, data) => run((s) => s.sign(key, data)),
    verify: (key, data, signature) => run((s) => s.verify(key, data, signature)),
    digest: (data) => run((s) => s.digest(data)),
  };
}

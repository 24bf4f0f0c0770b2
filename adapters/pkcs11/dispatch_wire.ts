/**
 * The wire format between `dispatch.ts` and `dispatch_worker.ts`: a batch
 * of jobs is one `Uint32Array` of fixed-size records plus one byte buffer
 * holding every handle, IV, AAD, input and signature; the answer is one
 * record array plus one byte buffer holding every output. Both buffers are
 * transferred, not copied, and a batch costs two small structured clones
 * whatever its size. (Cloning each job's Buffers would copy Node's 8 KiB
 * pool slabs they live in.)
 *
 * @module
 */

/**
 * Job kinds. The first five are single PKCS#11 calls after their `*Init`;
 * the last four do a whole adapter operation on the worker, so the main
 * thread does not have to: AES-GCM with a fresh IV written in front of the
 * output (`IV ‖ ciphertext ‖ tag`) and its reverse, and ECDSA over the
 * SHA-256 of the input, hashed on the worker.
 */
export const ENCRYPT = 0, DECRYPT = 1, SIGN = 2, VERIFY = 3, DIGEST = 4;
/** Whole operations (see above). */
export const SEAL_GCM = 5, OPEN_GCM = 6, SIGN_SHA256 = 7, VERIFY_SHA256 = 8;
/** The PKCS#11 function each kind runs after its `*Init`. */
export const OPERATION = [
  "C_Encrypt",
  "C_Decrypt",
  "C_Sign",
  "C_Verify",
  "C_Digest",
  "C_Encrypt",
  "C_Decrypt",
  "C_Sign",
  "C_Verify",
] as const;
/** The `*Init` function of each kind. */
export const INIT = [
  "C_EncryptInit",
  "C_DecryptInit",
  "C_SignInit",
  "C_VerifyInit",
  "C_DigestInit",
  "C_EncryptInit",
  "C_DecryptInit",
  "C_SignInit",
  "C_VerifyInit",
] as const;
/** AES-GCM IV and tag sizes of the whole-operation kinds. */
export const IV_BYTES = 12, TAG_BYTES = 16;

/** Words of one job record. */
export const JOB_WORDS = 18;
/** Field offsets in a job record. */
export const J = {
  id: 0,
  kind: 1,
  mechanism: 2,
  /** 0: no parameter; 1: AES-GCM parameters (iv, aad, tagBits). */
  paramType: 3,
  tagBits: 4,
  sessionOff: 5,
  sessionLen: 6,
  keyOff: 7,
  keyLen: 8,
  ivOff: 9,
  ivLen: 10,
  aadOff: 11,
  aadLen: 12,
  inOff: 13,
  inLen: 14,
  sigOff: 15,
  sigLen: 16,
  outLen: 17,
} as const;

/** Words of one result record. */
export const RESULT_WORDS = 5;
/** Field offsets in a result record. */
export const R = { id: 0, status: 1, outOff: 2, outLen: 3, code: 4 } as const;

/** Result statuses. */
export const OK_BYTES = 0, OK_TRUE = 1, OK_FALSE = 2, FAILED_INIT = 3, FAILED_CALL = 4;

/** A batch of jobs as posted to a worker. */
export interface JobBatch {
  /** Echoed in the answer. */
  batch: number;
  /** `JOB_WORDS` words per job. */
  jobs: Uint32Array<ArrayBuffer>;
  /** Every byte field of every job. */
  bytes: Uint8Array<ArrayBuffer>;
}

/** The answer to a {@link JobBatch}. */
export interface ResultBatch {
  /** The {@link JobBatch.batch} it answers. */
  batch: number;
  /** `RESULT_WORDS` words per job, in job order. */
  results: Uint32Array<ArrayBuffer>;
  /** Every output. */
  bytes: Uint8Array<ArrayBuffer>;
  /** Messages of failures that carried no CK_RV (by job index). */
  messages: Record<number, string>;
  /** How long the batch took on its thread, in µs. */
  busyUs: number;
}

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
import type { Buffer } from "node:buffer";
import { toHsmError } from "./errors.ts";

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

/** One job for a worker: a kind from `dispatch_wire.ts` and its bytes. */
export interface WireJob {
  /** Job kind (`ENCRYPT`, ..., `SEAL_GCM`, ...). */
  kind: number;
  /** The `CKM_*` mechanism. */
  mechanism: number;
  /** AES-GCM parameters (the IV is made by the worker for `SEAL_GCM`, read from the input for `OPEN_GCM`). */
  gcm?: { iv?: Uint8Array; aad?: Uint8Array; tagBits: number };
  /** The key's object handle (none for digests). */
  key: Uint8Array | null;
  /** The input. */
  input: Uint8Array;
  /** The signature, for verify kinds. */
  signature?: Uint8Array;
  /** The output buffer size the worker reserves. */
  outLength: number;
}

/** A job's result: bytes, a verify answer, or an error. */
export type WireResult = { ok: true; value: Uint8Array<ArrayBuffer> | boolean } | {
  ok: false;
  error: unknown;
};

/** Packs jobs into the wire format (one record array, one byte buffer). */
export function pack(batch: number, sessions: Buffer[], jobs: WireJob[]): JobBatch {
  let total = 0;
  for (let i = 0; i < jobs.length; i++) {
    const job = jobs[i];
    total += sessions[i].length + (job.key?.length ?? 0) + job.input.length +
      (job.signature?.length ?? 0) + (job.gcm?.iv?.length ?? 0) + (job.gcm?.aad?.length ?? 0);
  }
  const records = new Uint32Array(jobs.length * JOB_WORDS);
  const bytes = new Uint8Array(total);
  let pos = 0;
  const put = (b: Uint8Array | null | undefined, at: number, w: number) => {
    const len = b?.length ?? 0;
    records[at + w] = pos;
    records[at + w + 1] = len;
    if (len > 0) bytes.set(b!, pos);
    pos += len;
  };
  for (let i = 0; i < jobs.length; i++) {
    const job = jobs[i];
    const at = i * JOB_WORDS;
    records[at + J.id] = i;
    records[at + J.kind] = job.kind;
    records[at + J.mechanism] = job.mechanism;
    if (job.gcm !== undefined) {
      records[at + J.paramType] = 1;
      records[at + J.tagBits] = job.gcm.tagBits;
    }
    put(sessions[i], at, J.sessionOff);
    put(job.key, at, J.keyOff);
    put(job.gcm?.iv, at, J.ivOff);
    put(job.gcm?.aad, at, J.aadOff);
    put(job.input, at, J.inOff);
    put(job.signature, at, J.sigOff);
    records[at + J.outLen] = job.outLength;
  }
  return { batch, jobs: records, bytes };
}

/** Reads a worker's answer back into results, in job order. */
export function unpack(jobs: WireJob[], { results, bytes, messages }: ResultBatch): WireResult[] {
  const out: WireResult[] = new Array(jobs.length);
  for (let i = 0; i < jobs.length; i++) {
    const r = i * RESULT_WORDS;
    const status = results[r + R.status];
    if (status === OK_BYTES) {
      const off = results[r + R.outOff];
      out[i] = { ok: true, value: bytes.subarray(off, off + results[r + R.outLen]) };
    } else if (status <= 2) {
      out[i] = { ok: true, value: status === OK_TRUE };
    } else {
      const kind = jobs[i].kind;
      const step = status === FAILED_INIT ? INIT[kind] : OPERATION[kind];
      const code = results[r + R.code];
      out[i] = {
        ok: false,
        error: toHsmError(code ? { code, message: "" } : new Error(messages[i]), step),
      };
    }
  }
  return out;
}

/**
 * {@link runBatch}: runs a packed batch of jobs (`dispatch_wire.ts`) back to
 * back with synchronous PKCS#11 calls, on a worker of `dispatch.ts`.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import pkcs11js from "pkcs11js";
import {
  DECRYPT,
  DIGEST,
  ENCRYPT,
  FAILED_CALL,
  FAILED_INIT,
  J,
  JOB_WORDS,
  type JobBatch,
  OK_BYTES,
  OK_FALSE,
  OK_TRUE,
  OPEN_GCM,
  R,
  RESULT_WORDS,
  type ResultBatch,
  SEAL_GCM,
  SIGN,
  SIGN_SHA256,
  VERIFY,
  VERIFY_SHA256,
} from "./dispatch_wire.ts";
import { isBadSignature } from "./engine.ts";
import { GCM_IV_BYTES as IV_BYTES, splitSealed } from "./gcm.ts";
import { NATIVE, nativeCode } from "./native.ts";

const EMPTY = Buffer.alloc(1).subarray(0, 0); // zero-length but not a NULL pointer

// The binding's native methods (native.ts): this loop is the hot path.
const N = NATIVE;
const codeOf = nativeCode;

/** What a whole-operation AES-GCM job works on. */
interface GcmCall {
  kind: number;
  session: Buffer;
  mechanism: pkcs11js.Mechanism;
  key: Buffer;
  input: Buffer;
  out: Buffer;
  iv: Buffer | undefined;
}

/** The whole-operation AES-GCM kinds: the IV in front of the output, or read from the input. */
function runGcm(p: pkcs11js.PKCS11, c: GcmCall, step: { inited: boolean }): number {
  const gcm = c.mechanism.parameter as { iv?: Uint8Array };
  if (c.kind === SEAL_GCM) {
    gcm.iv = c.iv; // already written in front of the output
    N.C_EncryptInit.call(p, c.session, c.mechanism, c.key);
    step.inited = true;
    return IV_BYTES + N.C_Encrypt.call(p, c.session, c.input, c.out.subarray(IV_BYTES));
  }
  const { iv, body } = splitSealed(c.input);
  gcm.iv = iv;
  N.C_DecryptInit.call(p, c.session, c.mechanism, c.key);
  step.inited = true;
  return N.C_Decrypt.call(p, c.session, body.length === 0 ? EMPTY : body, c.out);
}

/** Runs one job; returns the output length (bytes kinds) or the verify result. */
function runJob(
  p: pkcs11js.PKCS11,
  kind: number,
  session: Buffer,
  mechanism: pkcs11js.Mechanism,
  key: Buffer,
  input: Buffer,
  signature: Buffer,
  out: Buffer,
  iv: Buffer | undefined,
  step: { inited: boolean },
): number | boolean {
  switch (kind) {
    case SEAL_GCM:
    case OPEN_GCM:
      return runGcm(p, { kind, session, mechanism, key, input, out, iv }, step);
    case SIGN_SHA256:
    case SIGN:
      N.C_SignInit.call(p, session, mechanism, key);
      step.inited = true;
      return N.C_Sign.call(
        p,
        session,
        kind === SIGN ? input : createHash("sha256").update(input).digest(),
        out,
      );
    case VERIFY_SHA256:
    case VERIFY:
      N.C_VerifyInit.call(p, session, mechanism, key);
      step.inited = true;
      try {
        return N.C_Verify.call(
          p,
          session,
          kind === VERIFY ? input : createHash("sha256").update(input).digest(),
          signature,
        );
      } catch (error) {
        if (!isBadSignature(codeOf(error))) throw error;
        return false;
      }
    case ENCRYPT:
      N.C_EncryptInit.call(p, session, mechanism, key);
      step.inited = true;
      return N.C_Encrypt.call(p, session, input, out);
    case DECRYPT:
      N.C_DecryptInit.call(p, session, mechanism, key);
      step.inited = true;
      return N.C_Decrypt.call(p, session, input, out);
    case DIGEST:
      N.C_DigestInit.call(p, session, mechanism);
      step.inited = true;
      return N.C_Digest.call(p, session, input, out);
  }
  throw new Error(`unknown job kind ${kind}`);
}

/** The mechanism of job record `j`, with AES-GCM parameters when it has them. */
function mechanismOf(
  jobs: Uint32Array,
  j: number,
  view: (off: number, len: number) => Buffer,
): pkcs11js.Mechanism {
  if (jobs[j + J.paramType] !== 1) return { mechanism: jobs[j + J.mechanism] };
  return {
    mechanism: jobs[j + J.mechanism],
    parameter: {
      type: pkcs11js.CK_PARAMS_AES_GCM,
      iv: view(jobs[j + J.ivOff], jobs[j + J.ivLen]),
      aad: jobs[j + J.aadLen] > 0 ? view(jobs[j + J.aadOff], jobs[j + J.aadLen]) : undefined,
      tagBits: jobs[j + J.tagBits],
    } as pkcs11js.IParams,
  };
}

/** Fresh IVs for every `SEAL_GCM` job of the batch, from one call to the generator. */
function ivsFor(jobs: Uint32Array, count: number): Uint8Array | undefined {
  let seals = 0;
  for (let i = 0; i < count; i++) if (jobs[i * JOB_WORDS + J.kind] === SEAL_GCM) seals++;
  return seals > 0 ? crypto.getRandomValues(new Uint8Array(seals * IV_BYTES)) : undefined;
}

/** One buffer for every job's output. */
function outputFor(jobs: Uint32Array, count: number): Buffer {
  let total = 0;
  for (let i = 0; i < count; i++) total += jobs[i * JOB_WORDS + J.outLen];
  return Buffer.from(new ArrayBuffer(Math.max(total, 1)));
}

/** Runs every job of `batch` in order on binding `p`; never throws. */
export function runBatch(p: pkcs11js.PKCS11, batch: JobBatch): ResultBatch {
  const started = performance.now();
  const { jobs, bytes } = batch;
  const count = jobs.length / JOB_WORDS;
  const all = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const view = (off: number, len: number) => (len === 0 ? EMPTY : all.subarray(off, off + len));
  const out = outputFor(jobs, count);
  const results = new Uint32Array(count * RESULT_WORDS);
  const messages: Record<number, string> = {};
  const step = { inited: false };
  const ivs = ivsFor(jobs, count);
  let ivPos = 0;
  let outPos = 0;
  for (let i = 0; i < count; i++) {
    const j = i * JOB_WORDS;
    const r = i * RESULT_WORDS;
    const kind = jobs[j + J.kind];
    const outLen = jobs[j + J.outLen];
    results[r + R.id] = jobs[j + J.id];
    step.inited = false;
    let iv: Buffer | undefined;
    if (ivs !== undefined && kind === SEAL_GCM) {
      out.set(ivs.subarray(ivPos, ivPos += IV_BYTES), outPos);
      iv = out.subarray(outPos, outPos + IV_BYTES);
    }
    try {
      const result = runJob(
        p,
        kind,
        view(jobs[j + J.sessionOff], jobs[j + J.sessionLen]),
        mechanismOf(jobs, j, view),
        view(jobs[j + J.keyOff], jobs[j + J.keyLen]),
        view(jobs[j + J.inOff], jobs[j + J.inLen]),
        view(jobs[j + J.sigOff], jobs[j + J.sigLen]),
        out.subarray(outPos, outPos + outLen),
        iv,
        step,
      );
      if (typeof result === "boolean") results[r + R.status] = result ? OK_TRUE : OK_FALSE;
      else {
        results[r + R.status] = OK_BYTES;
        results[r + R.outOff] = outPos;
        results[r + R.outLen] = result;
        outPos += outLen;
      }
    } catch (error) {
      const code = codeOf(error);
      results[r + R.status] = step.inited ? FAILED_CALL : FAILED_INIT;
      results[r + R.code] = code;
      if (code === 0) messages[i] = String((error as Error).message);
    }
  }
  return {
    batch: batch.batch,
    results,
    bytes: new Uint8Array(out.buffer as ArrayBuffer),
    messages,
    busyUs: (performance.now() - started) * 1000,
  };
}

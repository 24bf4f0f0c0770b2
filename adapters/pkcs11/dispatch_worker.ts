/**
 * The worker side of `dispatch.ts`: a Deno Worker with its own pkcs11js
 * binding to the already initialised module. It runs each batch of jobs
 * back to back with the synchronous calls and answers with one message.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import pkcs11js from "pkcs11js";
import {
  DECRYPT,
  DIGEST,
  ENCRYPT,
  FAILED_CALL,
  FAILED_INIT,
  IV_BYTES,
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

const CKR_SIGNATURE_INVALID = 0xC0;
const CKR_SIGNATURE_LEN_RANGE = 0xC1;
const EMPTY = Buffer.alloc(1).subarray(0, 0); // zero-length but not a NULL pointer

let pkcs11: pkcs11js.PKCS11 | undefined;

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
  step: { inited: boolean },
): number | boolean {
  const gcm = mechanism.parameter as { iv?: Buffer } | undefined;
  switch (kind) {
    case SEAL_GCM: {
      const iv = out.subarray(0, IV_BYTES);
      crypto.getRandomValues(iv);
      gcm!.iv = iv;
      p.C_EncryptInit(session, mechanism, key);
      step.inited = true;
      return IV_BYTES + p.C_Encrypt(session, input, out.subarray(IV_BYTES)).length;
    }
    case OPEN_GCM: {
      gcm!.iv = input.subarray(0, IV_BYTES);
      p.C_DecryptInit(session, mechanism, key);
      step.inited = true;
      const body = input.subarray(IV_BYTES);
      return p.C_Decrypt(session, body.length === 0 ? EMPTY : body, out).length;
    }
    case SIGN_SHA256:
    case SIGN:
      p.C_SignInit(session, mechanism, key);
      step.inited = true;
      return p.C_Sign(
        session,
        kind === SIGN ? input : createHash("sha256").update(input).digest(),
        out,
      ).length;
    case VERIFY_SHA256:
    case VERIFY:
      p.C_VerifyInit(session, mechanism, key);
      step.inited = true;
      try {
        return p.C_Verify(
          session,
          kind === VERIFY ? input : createHash("sha256").update(input).digest(),
          signature,
        );
      } catch (error) {
        const code = (error as { code?: number }).code;
        if (code !== CKR_SIGNATURE_INVALID && code !== CKR_SIGNATURE_LEN_RANGE) throw error;
        return false;
      }
    case ENCRYPT:
      p.C_EncryptInit(session, mechanism, key);
      step.inited = true;
      return p.C_Encrypt(session, input, out).length;
    case DECRYPT:
      p.C_DecryptInit(session, mechanism, key);
      step.inited = true;
      return p.C_Decrypt(session, input, out).length;
    case DIGEST:
      p.C_DigestInit(session, mechanism);
      step.inited = true;
      return p.C_Digest(session, input, out).length;
  }
  throw new Error(`unknown job kind ${kind}`);
}

function runBatch(p: pkcs11js.PKCS11, batch: JobBatch): ResultBatch {
  const { jobs, bytes } = batch;
  const count = jobs.length / JOB_WORDS;
  const all = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const view = (off: number, len: number) => (len === 0 ? EMPTY : all.subarray(off, off + len));
  let outTotal = 0;
  for (let i = 0; i < count; i++) outTotal += jobs[i * JOB_WORDS + J.outLen];
  const out = Buffer.from(new ArrayBuffer(Math.max(outTotal, 1)));
  const results = new Uint32Array(count * RESULT_WORDS);
  const messages: Record<number, string> = {};
  const step = { inited: false };
  let outPos = 0;
  for (let i = 0; i < count; i++) {
    const j = i * JOB_WORDS;
    const r = i * RESULT_WORDS;
    results[r + R.id] = jobs[j + J.id];
    const outLen = jobs[j + J.outLen];
    const mechanism: pkcs11js.Mechanism = jobs[j + J.paramType] === 1
      ? {
        mechanism: jobs[j + J.mechanism],
        parameter: {
          type: pkcs11js.CK_PARAMS_AES_GCM,
          iv: view(jobs[j + J.ivOff], jobs[j + J.ivLen]),
          aad: jobs[j + J.aadLen] > 0 ? view(jobs[j + J.aadOff], jobs[j + J.aadLen]) : undefined,
          tagBits: jobs[j + J.tagBits],
        } as pkcs11js.IParams,
      }
      : { mechanism: jobs[j + J.mechanism] };
    step.inited = false;
    try {
      const result = runJob(
        p,
        jobs[j + J.kind],
        view(jobs[j + J.sessionOff], jobs[j + J.sessionLen]),
        mechanism,
        view(jobs[j + J.keyOff], jobs[j + J.keyLen]),
        view(jobs[j + J.inOff], jobs[j + J.inLen]),
        view(jobs[j + J.sigOff], jobs[j + J.sigLen]),
        out.subarray(outPos, outPos + outLen),
        step,
      );
      if (typeof result === "boolean") {
        results[r + R.status] = result ? OK_TRUE : OK_FALSE;
        continue;
      }
      results[r + R.status] = OK_BYTES;
      results[r + R.outOff] = outPos;
      results[r + R.outLen] = result;
      outPos += outLen;
    } catch (error) {
      const code = (error as { code?: number }).code;
      results[r + R.status] = step.inited ? FAILED_CALL : FAILED_INIT;
      results[r + R.code] = typeof code === "number" ? code : 0;
      if (typeof code !== "number" || code === 0) messages[i] = String((error as Error).message);
    }
  }
  return {
    batch: batch.batch,
    results,
    bytes: new Uint8Array(out.buffer as ArrayBuffer),
    messages,
  };
}

self.onmessage = (event: MessageEvent) => {
  if (pkcs11 === undefined) {
    pkcs11 = new pkcs11js.PKCS11();
    pkcs11.load(event.data.library);
    try {
      // The main thread initialised the module; this only attaches to it.
      pkcs11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
    } catch {
      // CKR_CRYPTOKI_ALREADY_INITIALIZED: attached, as expected.
      self.postMessage({ ready: true });
      return;
    }
    // Our C_Initialize succeeded: the module was not (or no longer)
    // initialised by the main thread. Never own it from here.
    pkcs11.C_Finalize();
    self.postMessage({ ready: false });
    return;
  }
  const answer = runBatch(pkcs11, event.data as JobBatch);
  self.postMessage(answer, [answer.results.buffer, answer.bytes.buffer]);
};

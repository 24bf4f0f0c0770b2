/**
 * What a user writes by hand with pkcs11js and no pool: the module opened
 * once, N sessions, each driven by its own loop of `*Init` (synchronous, a
 * few µs; pkcs11js has no async init) then the `*Async` call on libuv's
 * thread pool. The same library, the same calls and the same number of
 * sessions as the adapter's `"async"` engine, minus the pool and the
 * adapter: what "the pool costs nothing" is measured against (issue 13).
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import type pkcs11jsModule from "pkcs11js";
import type { ContenderInstance, Trial } from "./benchmark.ts";
import {
  GCM_IV_BYTES,
  GCM_TAG_BYTES,
  openRawModule,
  type RawLoopSetup,
  type RawModule,
} from "./hsm_raw.ts";
import { SampleBuffer } from "./stats.ts";

/** Sessions (= concurrent loops) the hand-written contender uses at most: the pool's max. */
export const HAND_WRITTEN_MAX_SESSIONS = 4;

/** One operation on one session; resolves with the result (AES: `IV ‖ ciphertext ‖ tag`). */
export type SessionOp = (session: Buffer, slot: number) => Promise<Buffer>;

/** The hand-written operation of `s.op` on module `m` (`pins`: buffers of calls in flight). */
export function handWrittenOp(s: RawLoopSetup, m: RawModule, pins: unknown[]): SessionOp {
  return s.op === "aes" ? aesOp(s, m, pins) : ecdsaOp(s, m, pins);
}

function aesOp(s: RawLoopSetup, m: RawModule, pins: unknown[]): SessionOp {
  const { pkcs11js } = s;
  const input = Buffer.from(s.payload);
  return async (session, slot) => {
    // IV and ciphertext in one buffer: no concatenation after the call.
    const out = Buffer.allocUnsafe(GCM_IV_BYTES + input.length + GCM_TAG_BYTES);
    const iv = out.subarray(0, GCM_IV_BYTES);
    crypto.getRandomValues(iv);
    m.p.C_EncryptInit(session, {
      mechanism: pkcs11js.CKM_AES_GCM,
      parameter: { type: pkcs11js.CK_PARAMS_AES_GCM, iv, tagBits: GCM_TAG_BYTES * 8 },
    } as pkcs11jsModule.Mechanism, m.key);
    // pkcs11js keeps raw pointers to the buffers of an async call: keep them reachable.
    pins[slot] = out;
    await m.p.C_EncryptAsync(session, input, out.subarray(GCM_IV_BYTES));
    pins[slot] = undefined;
    return out;
  };
}

function ecdsaOp(s: RawLoopSetup, m: RawModule, pins: unknown[]): SessionOp {
  const { pkcs11js } = s;
  const input = Buffer.from(s.payload);
  const mechanism = { mechanism: pkcs11js.CKM_ECDSA };
  return async (session, slot) => {
    const digest = createHash("sha256").update(input).digest();
    m.p.C_SignInit(session, mechanism, m.key);
    const out = Buffer.alloc(64);
    pins[slot] = [digest, out];
    const signature = await m.p.C_SignAsync(session, digest, out);
    pins[slot] = undefined;
    return signature;
  };
}

/** Runs one loop per session for `durationMs`, timing every operation. */
async function runLoops(sessions: Buffer[], op: SessionOp, durationMs: number): Promise<Trial> {
  const samples = new SampleBuffer();
  const start = performance.now();
  const end = start + durationMs;
  let ops = 0;
  const loop = async (session: Buffer, slot: number) => {
    while (true) {
      const t0 = performance.now();
      if (t0 >= end) return;
      await op(session, slot);
      samples.push(performance.now() - t0);
      ops++;
    }
  };
  await Promise.all(sessions.map(loop));
  return { ops, elapsedMs: performance.now() - start, latenciesMs: samples.values() };
}

/**
 * Opens the module with `min(concurrency, HAND_WRITTEN_MAX_SESSIONS)` sessions; each trial runs
 * one loop per session (1 session for 1 caller, 4 for 32 callers).
 */
export async function openHandWrittenAsync(
  s: RawLoopSetup,
  concurrency: number,
): Promise<ContenderInstance> {
  const m = openRawModule(s, Math.min(concurrency, HAND_WRITTEN_MAX_SESSIONS));
  const pins: unknown[] = [];
  const op = handWrittenOp(s, m, pins);
  try {
    // Warm-up, and proof the calls work before anything is measured.
    await Promise.all(m.sessions.map((session, slot) => op(session, slot)));
  } catch (error) {
    m.close();
    throw error;
  }
  return {
    trial: (ms) => runLoops(m.sessions, op, ms),
    close: () => Promise.resolve(m.close()),
  };
}

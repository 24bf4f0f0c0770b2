/**
 * The HSM contenders without this package: raw pkcs11js as a user writes it by hand, on the
 * module opened once, N sessions and the token key found by label.
 *
 * - {@link openHandWrittenAsync}: one loop per session of `*Init` (synchronous, a few µs;
 *   pkcs11js has no async init) then the `*Async` call on libuv's thread pool. The same library,
 *   the same calls and the same number of sessions as the adapter, minus the pool and the
 *   adapter: what "the pool costs nothing" is measured against.
 * - {@link openRawLoop}: the single-session limit, one session in a synchronous loop, no pool,
 *   no promises, no threads. The ceiling one session on one core reaches. It blocks the event
 *   loop for as long as it runs (its timer lateness shows that).
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import type pkcs11jsModule from "pkcs11js";
import { callersOf, type ContenderInstance, SampleBuffer, type Trial } from "./benchmark.ts";

/** The `pkcs11js` module object. */
export type Pkcs11js = typeof pkcs11jsModule;

const CKR_CRYPTOKI_ALREADY_INITIALIZED = 0x191;
const CKR_USER_ALREADY_LOGGED_IN = 0x100;
/** AES-GCM IV and tag lengths (bytes), as the adapter uses. */
const GCM_IV_BYTES = 12;
const GCM_TAG_BYTES = 16;

/** Sessions (= concurrent loops) the hand-written contender uses at most: the pool's max. */
export const HAND_WRITTEN_MAX_SESSIONS = 4;

/** Where the raw contenders run and on what. */
export interface RawSetup {
  /** The loaded `pkcs11js` module (imported after its addon is built). */
  pkcs11js: Pkcs11js;
  /** Path of the PKCS#11 module. */
  library: string;
  /** Token label. */
  tokenLabel: string;
  /** User PIN. */
  pin: string;
  /** The operation. */
  op: "aes" | "ecdsa";
  /** Label of the token key (AES key, or EC private key). */
  keyLabel: string;
  /** The 1 KiB input. */
  payload: Uint8Array;
}

/** Whether pkcs11js threw this return code (it sets `code` and names it in the message). */
function isCkr(error: unknown, code: number, name: string): boolean {
  const e = error as { code?: unknown; message?: unknown };
  return e?.code === code || (typeof e?.message === "string" && e.message.includes(name));
}

/** The module opened by hand: `sessions` logged-in sessions and the key, no adapter code. */
interface RawModule {
  /** The pkcs11js instance. */
  p: pkcs11jsModule.PKCS11;
  /** Open R/W sessions. */
  sessions: Buffer[];
  /**
   * Starts `s.op` on a session (a fresh random IV in `out`'s first bytes for AES-GCM; SHA-256
   * of the input for ECDSA, then the `*Init` call); returns the data and the output buffer for
   * `C_Encrypt`/`C_Sign` or their `*Async` forms. `out` holds {@link outBytes} bytes.
   */
  begin(session: Buffer, out: Buffer): [data: Buffer, out: Buffer];
  /** Bytes of the output buffer `begin` takes. */
  outBytes: number;
  /** Logs out, closes the sessions, finalises (if this opened it), unloads. */
  close(): void;
}

/** Loads and initialises the module, opens `count` sessions, logs in, finds the key. */
function openRawModule(s: RawSetup, count: number): RawModule {
  const { pkcs11js } = s;
  const p = new pkcs11js.PKCS11();
  p.load(s.library);
  let initialised = false;
  try {
    p.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
    initialised = true;
  } catch (error) {
    if (!isCkr(error, CKR_CRYPTOKI_ALREADY_INITIALIZED, "ALREADY_INITIALIZED")) throw error;
  }
  const slot = p.C_GetSlotList(true).find((sl) =>
    p.C_GetTokenInfo(sl).label.trim() === s.tokenLabel
  );
  if (!slot) throw new Error(`raw pkcs11js: no token labelled ${s.tokenLabel}`);
  const sessions = Array.from(
    { length: count },
    () => p.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION),
  );
  // Login is per application, not per session: one C_Login covers every session.
  let loggedIn = false;
  try {
    p.C_Login(sessions[0], pkcs11js.CKU_USER, s.pin);
    loggedIn = true;
  } catch (error) {
    if (!isCkr(error, CKR_USER_ALREADY_LOGGED_IN, "USER_ALREADY_LOGGED_IN")) throw error;
  }
  const aes = s.op === "aes";
  p.C_FindObjectsInit(sessions[0], [
    { type: pkcs11js.CKA_LABEL, value: s.keyLabel },
    { type: pkcs11js.CKA_CLASS, value: aes ? pkcs11js.CKO_SECRET_KEY : pkcs11js.CKO_PRIVATE_KEY },
  ]);
  const [key] = p.C_FindObjects(sessions[0], 1);
  p.C_FindObjectsFinal(sessions[0]);
  if (!key) throw new Error(`raw pkcs11js: no key labelled ${s.keyLabel}`);
  const input = Buffer.from(s.payload);
  const ecdsa = { mechanism: pkcs11js.CKM_ECDSA };
  return {
    p,
    sessions,
    outBytes: aes ? GCM_IV_BYTES + input.length + GCM_TAG_BYTES : 64,
    begin: aes
      ? (session, out) => {
        const iv = out.subarray(0, GCM_IV_BYTES);
        crypto.getRandomValues(iv);
        p.C_EncryptInit(session, {
          mechanism: pkcs11js.CKM_AES_GCM,
          parameter: { type: pkcs11js.CK_PARAMS_AES_GCM, iv, tagBits: GCM_TAG_BYTES * 8 },
        } as pkcs11jsModule.Mechanism, key);
        // IV and ciphertext in one buffer: no concatenation after the call.
        return [input, out.subarray(GCM_IV_BYTES)];
      }
      : (session, out) => {
        const digest = createHash("sha256").update(input).digest();
        p.C_SignInit(session, ecdsa, key);
        return [digest, out];
      },
    close() {
      if (loggedIn) p.C_Logout(sessions[0]);
      for (const session of sessions) p.C_CloseSession(session);
      if (initialised) p.C_Finalize();
      p.close();
    },
  };
}

/**
 * Hand-written `*Async` calls: opens the module with `min(concurrency,
 * HAND_WRITTEN_MAX_SESSIONS)` sessions; each trial runs one loop per session (1 session for 1
 * caller, 4 for 32 callers), timing every operation.
 */
export function openHandWrittenAsync(
  s: RawSetup,
  concurrency: number,
): Promise<ContenderInstance> {
  const m = openRawModule(s, Math.min(concurrency, HAND_WRITTEN_MAX_SESSIONS));
  const { p, sessions } = m;
  // pkcs11js keeps raw pointers to the buffers of an async call: keep them reachable.
  const pins: unknown[] = [];
  const op = async (slot: number) => {
    const session = sessions[slot];
    const out = Buffer.allocUnsafe(m.outBytes);
    const [data, into] = m.begin(session, out);
    pins[slot] = [data, out];
    await (s.op === "aes"
      ? p.C_EncryptAsync(session, data, into)
      : p.C_SignAsync(session, data, into));
    pins[slot] = undefined;
  };
  // The warm-up also proves the calls work before anything is measured.
  return callersOf(sessions.length, op, () => Promise.resolve(m.close()), {
    warmUp: sessions.length,
  });
}

/** Opens the module, one session, logs in, finds the key; `trial` loops synchronously. */
export function openRawLoop(s: RawSetup): ContenderInstance {
  const m = openRawModule(s, 1);
  const { p, sessions: [session] } = m;
  const out = Buffer.alloc(m.outBytes);
  const op = s.op === "aes"
    ? () => p.C_Encrypt(session, ...m.begin(session, out))
    : () => p.C_Sign(session, ...m.begin(session, out));
  for (let i = 0; i < 50; i++) op(); // warm-up
  return {
    trial: (ms) => Promise.resolve(runSyncLoop(ms, op)),
    close: () => Promise.resolve(m.close()),
  };
}

/** Runs a synchronous `op` in a tight loop for `durationMs`, timing each (the event loop is blocked). */
function runSyncLoop(durationMs: number, op: () => unknown): Trial {
  const samples = new SampleBuffer();
  const start = performance.now();
  const end = start + durationMs;
  let ops = 0;
  let t0 = start;
  while (t0 < end) {
    op();
    const t1 = performance.now();
    samples.push(t1 - t0);
    t0 = t1;
    ops++;
  }
  return { ops, elapsedMs: performance.now() - start, latenciesMs: samples.values() };
}

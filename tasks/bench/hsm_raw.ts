/**
 * The single-session limit: raw pkcs11js on one session in a synchronous
 * loop, no pool, no promises, no threads. The ceiling one session on one
 * core reaches, and what the pooled contenders are compared with. It blocks
 * the event loop for as long as it runs (its timer lateness shows that).
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import type pkcs11jsModule from "pkcs11js";
import type { ContenderInstance } from "./benchmark.ts";
import { runSyncLoop } from "./workers.ts";

/** The `pkcs11js` module object. */
export type Pkcs11js = typeof pkcs11jsModule;

const CKR_CRYPTOKI_ALREADY_INITIALIZED = 0x191;
const CKR_USER_ALREADY_LOGGED_IN = 0x100;
/** AES-GCM IV length (bytes), as the adapter uses. */
export const GCM_IV_BYTES = 12;
/** AES-GCM tag length (bytes), as the adapter uses. */
export const GCM_TAG_BYTES = 16;

/** Where the raw loop runs and on what. */
export interface RawLoopSetup {
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
export interface RawModule {
  /** The pkcs11js instance. */
  p: pkcs11jsModule.PKCS11;
  /** Open R/W sessions. */
  sessions: Buffer[];
  /** The token key (handles are valid in every session of the application). */
  key: Buffer;
  /** Logs out, closes the sessions, finalises (if this opened it), unloads. */
  close(): void;
}

/** Loads and initialises the module, opens `count` sessions, logs in, finds the key. */
export function openRawModule(s: RawLoopSetup, count: number): RawModule {
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
  p.C_FindObjectsInit(sessions[0], [
    { type: pkcs11js.CKA_LABEL, value: s.keyLabel },
    {
      type: pkcs11js.CKA_CLASS,
      value: s.op === "aes" ? pkcs11js.CKO_SECRET_KEY : pkcs11js.CKO_PRIVATE_KEY,
    },
  ]);
  const [key] = p.C_FindObjects(sessions[0], 1);
  p.C_FindObjectsFinal(sessions[0]);
  if (!key) throw new Error(`raw pkcs11js: no key labelled ${s.keyLabel}`);
  return {
    p,
    sessions,
    key,
    close() {
      if (loggedIn) p.C_Logout(sessions[0]);
      for (const session of sessions) p.C_CloseSession(session);
      if (initialised) p.C_Finalize();
      p.close();
    },
  };
}

/** Opens the module, one session, logs in, finds the key; `trial` loops synchronously. */
export function openRawLoop(s: RawLoopSetup): ContenderInstance {
  const { pkcs11js } = s;
  const { p, sessions: [session], key, close } = openRawModule(s, 1);
  const input = Buffer.from(s.payload);
  const out = Buffer.alloc(s.payload.length + GCM_TAG_BYTES + 64);
  const iv = Buffer.alloc(GCM_IV_BYTES);
  // The same work as the adapter: a fresh random IV per AES-GCM; SHA-256 here, then CKM_ECDSA.
  const op = s.op === "aes"
    ? () => {
      crypto.getRandomValues(iv);
      p.C_EncryptInit(session, {
        mechanism: pkcs11js.CKM_AES_GCM,
        parameter: { type: pkcs11js.CK_PARAMS_AES_GCM, iv, tagBits: GCM_TAG_BYTES * 8 },
      } as pkcs11jsModule.Mechanism, key);
      return p.C_Encrypt(session, input, out);
    }
    : () => {
      const digest = createHash("sha256").update(input).digest();
      p.C_SignInit(session, { mechanism: pkcs11js.CKM_ECDSA }, key);
      return p.C_Sign(session, digest, out);
    };
  for (let i = 0; i < 50; i++) op(); // warm-up

  return {
    trial: (ms) => Promise.resolve(runSyncLoop(ms, op, true)),
    close: () => Promise.resolve(close()),
  };
}

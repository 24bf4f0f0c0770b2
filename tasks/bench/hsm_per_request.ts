/**
 * The per-request pattern, for comparison with the pool (the benchmark's
 * `per-request` contender and the service's `/encrypt-per-request`): every
 * call loads and initialises the module, opens a session, logs in, runs the
 * operation, logs out, closes the session and finalises the module.
 *
 * Module initialisation and login are process-wide state in PKCS#11, so in
 * one process these sequences cannot overlap (one caller's `C_Finalize` or
 * `C_Logout` would pull the ground from under another's): calls are run one
 * at a time. When something else in the process (an open pool) already
 * initialised the module or logged the token in, this code leaves both as
 * they were, as correct per-request code must.
 *
 * @module
 */
import { CKR } from "../../adapters/pkcs11/errors.ts";
import { toHsmError } from "../../adapters/pkcs11/errors.ts";
import type { HsmSession } from "../../adapters/pkcs11/mod.ts";
import { Module } from "../../adapters/pkcs11/module.ts";
import { findPkcs11Module } from "../../adapters/pkcs11/library.ts";
import { Session } from "../../adapters/pkcs11/session.ts";
import { CallPlace } from "../../adapters/pkcs11/threads.ts";
import { findSlotByLabel } from "../../adapters/pkcs11/token.ts";

const CKU_USER = 1;

/** Options of {@link withPerRequestSession}. */
export interface PerRequestOptions {
  /** Path of the PKCS#11 module. Default `PKCS11_MODULE`, then the usual SoftHSM2 locations. */
  library?: string;
  /** Label of the token. */
  tokenLabel: string;
  /** The user PIN. */
  pin: string;
}

let queue: Promise<unknown> = Promise.resolve();

/**
 * Runs `fn` on a session made just for it, with the whole module lifecycle
 * around it (see the module doc). Calls are serialised process-wide.
 */
export function withPerRequestSession<T>(
  options: PerRequestOptions,
  fn: (session: HsmSession) => T | Promise<T>,
): Promise<T> {
  const run = queue.then(() => perRequest(options, fn));
  queue = run.catch(() => {});
  return run;
}

async function perRequest<T>(
  options: PerRequestOptions,
  fn: (session: HsmSession) => T | Promise<T>,
): Promise<T> {
  const module = new Module(findPkcs11Module(options.library));
  const { pkcs11 } = module;
  let session: Session | undefined;
  let loggedIn = false;
  try {
    const slot = findSlotByLabel(module, options.tokenLabel);
    session = new Session(module, slot, { place: new CallPlace(), keyDestroyed: () => {} });
    try {
      pkcs11.C_Login(session.handle, CKU_USER, options.pin);
      loggedIn = true;
    } catch (error) {
      const wrapped = toHsmError(error, "C_Login");
      if (wrapped.code !== CKR.USER_ALREADY_LOGGED_IN) throw wrapped;
    }
    return await fn(session);
  } finally {
    if (session && loggedIn) {
      try {
        pkcs11.C_Logout(session.handle);
      } catch { /* the session is already gone */ }
    }
    session?.close();
    if (module.initialisedByUs) {
      try {
        pkcs11.C_Finalize();
      } catch { /* finalised elsewhere */ }
    }
    pkcs11.close();
  }
}

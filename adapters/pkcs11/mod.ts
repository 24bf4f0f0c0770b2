/**
 * PKCS#11 sessions in a pool: an adapter for hardware security modules
 * (tested on SoftHSM2) through `npm:pkcs11js`.
 *
 * ```ts
 * import { openHsm } from "@poolkit/pool/pkcs11";
 *
 * await using hsm = await openHsm({ tokenLabel: "TestToken", pin: Deno.env.get("PKCS11_PIN")! });
 * await hsm.use((s) => s.generateAesKey({ label: "app" }));
 * const { ciphertext, keyId } = await hsm.encrypt("app", new TextEncoder().encode("secret"));
 * const plaintext = await hsm.decrypt(keyId, ciphertext);
 * ```
 *
 * The module is initialised once per process (with OS locking) and
 * finalised by its last user; the token is logged in once, on an anchor
 * session that is never lent out; each pooled resource is one R/W session.
 * A PIN the token refuses costs one `C_Login` per handle, never more.
 *
 * @module
 */
export {
  Hsm,
  type HsmLease,
  type HsmStats,
  openHsm,
  openHsmFromEnv,
  type Sealed,
  type SealOptions,
} from "./hsm.ts";
export type { HsmPoolOptions, OpenHsmOptions } from "./options.ts";
export { HsmSession } from "./session.ts";
export type { HsmOps } from "./ops.ts";
export { SessionHandle } from "./handle.ts";
export type { LoadedModule } from "./registry.ts";
export type { HsmKey, HsmKeyKind, HsmKeyPair, KeyOptions } from "./keys.ts";
export { GCM_IV_BYTES, GCM_TAG_BYTES } from "./gcm.ts";
export { CKR, ckrName } from "./ckr.ts";
export {
  HsmError,
  type HsmErrorOptions,
  isSessionFatal,
  KeyNotFoundError,
  PinMismatchError,
  PinRefusedError,
} from "./errors.ts";
export { findPkcs11Module, SOFTHSM2_LOCATIONS } from "./library.ts";
export { registeredModule } from "./registry.ts";
export { type PerRequestOptions, withPerRequestSession } from "./per_request.ts";
export type { BytesCall, CryptoEngine } from "./engine.ts";
export { asyncEngine, syncEngine } from "./engine_local.ts";
export {
  createWorkerEngine,
  type WireJob,
  type WireResult,
  type WorkerEngine,
  type WorkerEngineOptions,
} from "./dispatch.ts";
/** The core pool, its options and its errors, so one import serves an app. */
export * from "../../mod.ts";

/**
 * PKCS#11 sessions in a pool: an adapter for hardware security modules
 * (tested on SoftHSM2) through `npm:pkcs11js`. Build pkcs11js's native
 * addon once with `deno run -A jsr:@poolkit/pool/pkcs11/install`.
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
 * Several tokens holding clones of the same keys (an HSM group) make one
 * handle with `members`: calls go to the member with the fewest in flight,
 * and move to another member when one fails (see `docs/pkcs11.md`).
 *
 * ```ts
 * import { openHsm } from "@poolkit/pool/pkcs11";
 *
 * await using group = await openHsm({
 *   members: [{ tokenLabel: "hsm-a" }, { tokenLabel: "hsm-b", pin: Deno.env.get("PIN_B")! }],
 *   pin: Deno.env.get("PKCS11_PIN")!,
 * });
 * const { ciphertext, keyId } = await group.encrypt("app", new TextEncoder().encode("secret"));
 * for (const m of group.stats().members) console.log(m.name, m.state, m.reason ?? "");
 * ```
 *
 * The module is initialised once per process (with OS locking) and
 * finalised by its last user; the token is logged in once, while the handle
 * opens, on a session that is never lent out; each pooled resource is one
 * R/W session. See `docs/pkcs11.md`.
 *
 * @module
 */
export {
  type DecryptOptions,
  Hsm,
  type HsmLease,
  type HsmMember,
  type HsmOps,
  openHsm,
  type Sealed,
  type SealOptions,
} from "./hsm.ts";
export { type HsmMemberEvent, type HsmMemberState, NoMemberUpError } from "./group.ts";
export type { MemberStats } from "./member.ts";
export type { HsmMemberStats, HsmStats } from "./stats.ts";
export type {
  HsmFailoverOptions,
  HsmMemberOptions,
  HsmPoolOptions,
  HsmTokenOptions,
  OpenHsmOptions,
} from "./options.ts";
export type { HsmSession } from "./session.ts";
export type { HsmKey, HsmKeyKind, HsmKeyPair, KeyOptions } from "./ops.ts";
export { CKR, ckrName } from "./errors.ts";
export {
  HsmError,
  type HsmErrorOptions,
  KeyNotFoundError,
  PinMismatchError,
  PinRefusedError,
} from "./errors.ts";
export { findPkcs11Module } from "./library.ts";

/**
 * The options of `openHsm()` and their checks.
 *
 * @module
 */
import { rejectUnknownOptions } from "../../pool/options.ts";
import type { PoolSettings } from "../../pool/types.ts";
import type { HsmSession } from "./session.ts";

/** Pool settings for the sessions (the pool part of {@link OpenHsmOptions}). */
export type HsmPoolOptions = PoolSettings<HsmSession>;

/** Options of `openHsm()`. Explicit options win over the environment. */
export interface OpenHsmOptions {
  /** Path of the PKCS#11 module. Default `PKCS11_MODULE`, then the usual SoftHSM2 locations. */
  library?: string;
  /** Label of the token. Preferred over `slotId`: slot ids change. */
  tokenLabel?: string;
  /** Slot id, when there is no label to go by. Without either: `PKCS11_TOKEN_LABEL`. */
  slotId?: number;
  /**
   * The user PIN. Never appears in errors, logs or stats. A PIN the token
   * refuses costs one `C_Login` per handle: the handle never sends it again.
   */
  pin: string;
  /** Pool sizing and timing (`max` default 4). */
  pool?: HsmPoolOptions;
  /**
   * How long `Hsm.encrypt` and `Hsm.decrypt` keep token keys found by label
   * or id, in ms (`C_FindObjects` costs more than the crypto). A key added
   * under a label is used within this time. Default 1000; 0 looks keys up
   * on every call.
   */
  keyCacheMs?: number;
}

const KNOWN: readonly (keyof OpenHsmOptions)[] = [
  "library",
  "tokenLabel",
  "slotId",
  "pin",
  "pool",
  "keyCacheMs",
];

/** Checks what can be checked before anything is opened; throws a TypeError or RangeError. */
export function checkOptions(options: OpenHsmOptions): void {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("openHsm needs an options object with at least a pin");
  }
  rejectUnknownOptions("openHsm", options, KNOWN);
  if (typeof options.pin !== "string" || options.pin === "") {
    throw new TypeError("openHsm needs a pin (for example from PKCS11_PIN)");
  }
  const ttl = options.keyCacheMs;
  if (ttl !== undefined && !(typeof ttl === "number" && ttl >= 0)) {
    throw new RangeError(`keyCacheMs must be 0 or more, got ${ttl}`);
  }
}

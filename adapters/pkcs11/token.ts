/**
 * Finding the token: by label (stable), or by slot id (not stable: SoftHSM
 * renumbers slots when a token is initialised).
 *
 * @module
 */
import type { Buffer } from "node:buffer";
import { HsmError, toHsmError } from "./errors.ts";
import type { LoadedModule } from "./registry.ts";

/**
 * The slot holding the token with this label. Slot ids are not stable
 * (SoftHSM renumbers them when a token is initialised), labels are.
 */
export function findSlotByLabel(module: LoadedModule, label: string): Buffer {
  let slots: Buffer[];
  try {
    slots = module.pkcs11.C_GetSlotList(true);
  } catch (error) {
    throw toHsmError(error, "C_GetSlotList");
  }
  const labels: string[] = [];
  for (const slot of slots) {
    const tokenLabel = module.pkcs11.C_GetTokenInfo(slot).label.trim();
    if (tokenLabel === label) return slot;
    labels.push(tokenLabel);
  }
  throw new HsmError(
    `no token labelled "${label}" in ${module.path} (tokens: ${
      labels.length ? labels.map((l) => `"${l}"`).join(", ") : "none"
    }); run \`deno task setup:hsm\` for the private test token, or check SOFTHSM2_CONF`,
    { operation: "findSlot" },
  );
}

/** A slot id as a number, for messages and stats. */
export function slotNumber(slot: Buffer): number {
  return Number(slot.length >= 8 ? slot.readBigUInt64LE(0) : BigInt(slot.readUInt32LE(0)));
}

/** Where to find the token: explicit options first, then `PKCS11_TOKEN_LABEL`. */
export interface TokenChoice {
  /** Label of the token. */
  tokenLabel?: string;
  /** Slot id. */
  slotId?: number;
}

/**
 * The token's slot and label. Explicit options win over the environment:
 * `tokenLabel`, then `slotId`, then `PKCS11_TOKEN_LABEL`.
 */
export function pickSlot(
  module: LoadedModule,
  choice: TokenChoice,
): { slot: Buffer; label: string } {
  if (choice.tokenLabel !== undefined && choice.tokenLabel !== "") {
    return { slot: findSlotByLabel(module, choice.tokenLabel), label: choice.tokenLabel };
  }
  if (choice.slotId !== undefined) return findSlotById(module, choice.slotId);
  const label = Deno.env.get("PKCS11_TOKEN_LABEL");
  if (label !== undefined && label !== "") return { slot: findSlotByLabel(module, label), label };
  throw new TypeError(
    "openHsm needs tokenLabel or slotId (or PKCS11_TOKEN_LABEL in the environment)",
  );
}

function findSlotById(module: LoadedModule, slotId: number): { slot: Buffer; label: string } {
  for (const slot of module.pkcs11.C_GetSlotList(true)) {
    if (slotNumber(slot) === slotId) {
      return { slot, label: module.pkcs11.C_GetTokenInfo(slot).label.trim() };
    }
  }
  throw new HsmError(`no token in slot ${slotId} of ${module.path}`, { operation: "findSlot" });
}

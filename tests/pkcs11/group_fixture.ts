/**
 * The shared setup of the multi-member (HSM group) tests: a private SoftHSM2 with two or three
 * tokens holding clones of the same keys (same `CKA_ID`, label and value), optionally a key on the
 * first token only, different PINs per token, and the fault module in front (`withFaults`).
 * Everything is removed on dispose, and at once when provisioning fails.
 *
 * ```ts
 * await using group = await openGroupFixture({ withFaults: true });
 * await using hsm = await openHsm({ members: group.members, pin: group.pin });
 * group.tokens[1].faults!.set({ fail: CKR.DEVICE_REMOVED }); // member "hsm-b" looks dead
 * group.faults!.reset(); // healthy again
 * ```
 *
 * Open the handle after the fixture (`await using` closes it first); tokens are `hsm-a`,
 * `hsm-b`, `hsm-c`, each member named after its token; keys are `group.keys.aes` (label
 * `group-aes`), `group.keys.ec` (`group-ec`, a P-256 pair) and `group.keys.onlyOnFirst`.
 *
 * @module
 */
import {
  provisionTokenGroup,
  type TokenGroup,
  type TokenGroupOptions,
} from "../../tasks/setup/token_group.ts";

export { CKR } from "../../tasks/setup/fault_module.ts";
export type { GroupMember, GroupToken, TokenGroup } from "../../tasks/setup/token_group.ts";

/** Provisions the tokens (2 by default) with the same keys; see the module's documentation. */
export function openGroupFixture(options: TokenGroupOptions = {}): Promise<TokenGroup> {
  return provisionTokenGroup(options);
}

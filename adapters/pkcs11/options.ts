/**
 * The options of `openHsm()` and their checks.
 *
 * @module
 */
import type { CLOCK, Clock } from "../../pool/clock.ts";
import { rejectUnknownOptions } from "../../pool/options.ts";
import type { PoolSettings } from "../../pool/types.ts";
import type { HsmSession } from "./session.ts";

/** Pool settings for the sessions (the pool part of {@link OpenHsmOptions}). */
export type HsmPoolOptions = PoolSettings<HsmSession>;

/** Where one token is: its module, and its label or slot. */
export interface HsmTokenOptions {
  /** Path of the PKCS#11 module. Default `PKCS11_MODULE`, then the usual SoftHSM2 locations. */
  library?: string;
  /** Label of the token. Preferred over `slotId`: slot ids change. */
  tokenLabel?: string;
  /** Slot id, when there is no label to go by. Without either: `PKCS11_TOKEN_LABEL`. */
  slotId?: number;
}

/** One member of a group ({@link OpenHsmOptions.members}): a token holding clones of the keys. */
export interface HsmMemberOptions extends HsmTokenOptions {
  /**
   * The member's name in stats, events and metrics (the `member` of
   * `hsm:<member>` pool names). Default the token label; names are unique.
   */
  name?: string;
  /** The member's user PIN, where it differs from the top-level `pin`. */
  pin?: string;
}

/** How a group takes members out and brings them back ({@link OpenHsmOptions.failover}). */
export interface HsmFailoverOptions {
  /** `CKR_GENERAL_ERROR`s in a row that take a member out. Default 3. */
  generalErrors?: number;
  /**
   * A crypto call on a member that has not answered after this long takes
   * the member out (the call moves to another member), in ms. Default 5000.
   */
  callTimeoutMs?: number;
  /** First wait before probing a member that went out, in ms; doubles per failed probe. Default 50. */
  probeMinMs?: number;
  /** Longest wait between two probes of a member that is out, in ms. Default 1000. */
  probeMaxMs?: number;
}

/** Options of `openHsm()`. Explicit options win over the environment. */
export interface OpenHsmOptions extends HsmTokenOptions {
  /**
   * Several tokens holding clones of the same keys (same `CKA_ID`s), served
   * as one handle: calls go to the member with the fewest in flight, and
   * move to another when one fails. Excludes `library`, `tokenLabel` and
   * `slotId` at the top level.
   */
  members?: readonly HsmMemberOptions[];
  /**
   * The user PIN (of every member without its own). Never appears in
   * errors, logs or stats. A PIN a token refuses costs one `C_Login` per
   * handle and token: the handle never sends it again.
   */
  pin: string;
  /** Pool sizing and timing of each member's sessions (`max` default 4). */
  pool?: HsmPoolOptions;
  /**
   * How long `Hsm.encrypt` and `Hsm.decrypt` keep token keys found by label
   * or id, in ms (`C_FindObjects` costs more than the crypto). A key added
   * under a label is used within this time. Default 1000; 0 looks keys up
   * on every call.
   */
  keyCacheMs?: number;
  /** When a member of a group goes out and how it is probed (groups only). */
  failover?: HsmFailoverOptions;
}

/** {@link OpenHsmOptions} as the handle reads them: the documented ones plus the core's clock seam. */
export interface OpenHsmInternals extends OpenHsmOptions {
  /** The clock the recovery probes run on (the tests' hand-driven one). */
  [CLOCK]?: Clock;
}

/** One member as the handle opens it: its token, its PIN and its name. */
export interface MemberConfig extends HsmTokenOptions {
  /** The given name, or `undefined` for the token label. */
  name?: string;
  /** The member's PIN. */
  pin: string;
}

/** The failover settings with their defaults filled in. */
export type FailoverSettings = Required<HsmFailoverOptions>;

const KNOWN: readonly (keyof OpenHsmOptions)[] = [
  "library",
  "tokenLabel",
  "slotId",
  "members",
  "pin",
  "pool",
  "keyCacheMs",
  "failover",
];
const MEMBER_KNOWN: readonly (keyof HsmMemberOptions)[] = [
  "name",
  "library",
  "tokenLabel",
  "slotId",
  "pin",
];
const FAILOVER_KNOWN: readonly (keyof HsmFailoverOptions)[] = [
  "generalErrors",
  "callTimeoutMs",
  "probeMinMs",
  "probeMaxMs",
];
const FAILOVER_DEFAULTS: FailoverSettings = {
  generalErrors: 3,
  callTimeoutMs: 5000,
  probeMinMs: 50,
  probeMaxMs: 1000,
};

/** Checks what can be checked before anything is opened; throws a TypeError or RangeError. */
export function checkOptions(options: OpenHsmOptions): void {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("openHsm needs an options object with at least a pin");
  }
  rejectUnknownOptions("openHsm", options, KNOWN);
  const { members } = options;
  if (typeof options.pin !== "string" || options.pin === "") {
    const hint = members === undefined ? "" : " (the default of members without their own)";
    throw new TypeError(`openHsm needs a pin${hint} (for example from PKCS11_PIN)`);
  }
  const ttl = options.keyCacheMs;
  if (ttl !== undefined && !(typeof ttl === "number" && ttl >= 0)) {
    throw new RangeError(`keyCacheMs must be 0 or more, got ${ttl}`);
  }
  if (members !== undefined) checkMembers(options, members);
  failoverSettings(options.failover);
}

function checkMembers(options: OpenHsmOptions, members: unknown): void {
  if (!Array.isArray(members) || members.length === 0) {
    throw new TypeError(
      "openHsm: members must be a non-empty array of { name?, library?, tokenLabel?, slotId?, " +
        "pin? }; for one token, leave members out and give library and tokenLabel",
    );
  }
  for (const top of ["library", "tokenLabel", "slotId"] as const) {
    if (options[top] !== undefined) {
      throw new TypeError(
        `openHsm: '${top}' and 'members' exclude each other: move '${top}' into each member`,
      );
    }
  }
  members.forEach((member, i) => {
    const where = `openHsm members[${i}]`;
    if (typeof member !== "object" || member === null) {
      throw new TypeError(`${where} must be an object such as { tokenLabel: "hsm-a" }`);
    }
    rejectUnknownOptions(where, member, MEMBER_KNOWN);
    const { name, pin, tokenLabel, slotId } = member as HsmMemberOptions;
    if (name !== undefined && (typeof name !== "string" || !/^[\w.:-]+$/.test(name))) {
      throw new TypeError(
        `${where}: name must be letters, digits, "_", ".", ":" or "-" (it is a metric label), ` +
          `got ${JSON.stringify(name)}`,
      );
    }
    if (pin !== undefined && (typeof pin !== "string" || pin === "")) {
      throw new TypeError(
        `${where}: pin must be a non-empty string, or left out for the top-level pin`,
      );
    }
    if ((tokenLabel === undefined || tokenLabel === "") && slotId === undefined) {
      throw new TypeError(`${where} needs a tokenLabel (or a slotId): which token is it?`);
    }
  });
}

/** The members to open: the group's, or the one of the top-level options. */
export function memberConfigs(options: OpenHsmOptions): MemberConfig[] {
  if (options.members === undefined) {
    const { library, tokenLabel, slotId, pin } = options;
    return [{ library, tokenLabel, slotId, pin }];
  }
  return options.members.map((m) => ({ ...m, pin: m.pin ?? options.pin }));
}

/** The failover settings with defaults; throws a TypeError or RangeError for a bad one. */
export function failoverSettings(failover: HsmFailoverOptions | undefined): FailoverSettings {
  if (failover === undefined) return FAILOVER_DEFAULTS;
  if (typeof failover !== "object" || failover === null) {
    throw new TypeError("openHsm: failover must be an object such as { callTimeoutMs: 2000 }");
  }
  rejectUnknownOptions("openHsm failover", failover, FAILOVER_KNOWN, "failover.");
  const settings = { ...FAILOVER_DEFAULTS };
  for (const key of FAILOVER_KNOWN) {
    const value = failover[key];
    if (value === undefined) continue;
    // 0 would probe without pause (probeMinMs) or time every call out at once (callTimeoutMs).
    if (typeof value !== "number" || !Number.isFinite(value) || value < 1) {
      const unit = key === "generalErrors" ? "" : " (ms)";
      throw new RangeError(`failover.${key} must be a number of 1 or more${unit}, got ${value}`);
    }
    settings[key] = value;
  }
  if (settings.probeMaxMs < settings.probeMinMs) {
    throw new RangeError(
      `failover.probeMaxMs (${settings.probeMaxMs}) must not be less than probeMinMs ` +
        `(${settings.probeMinMs})`,
    );
  }
  return settings;
}

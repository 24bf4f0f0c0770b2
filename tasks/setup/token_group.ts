/**
 * {@link provisionTokenGroup}: a private SoftHSM2 with two or more tokens holding clones of the
 * same keys (same `CKA_ID`, label and value), as the members of an HSM group do, optionally behind
 * the PKCS#11 fault module. The multi-member tests and the HSM benchmark's group rows start here.
 *
 * ```ts
 * await using group = await provisionTokenGroup({ tokens: 2, withFaults: true });
 * await using hsm = await openHsm({ members: group.members, pin: group.pin });
 * group.tokens[1].faults!.set({ fail: CKR.DEVICE_REMOVED }); // the second member dies
 * ```
 *
 * Load it after pkcs11js's addon is built (it imports pkcs11js).
 *
 * @module
 */
import pkcs11js from "pkcs11js";
import { type FaultModule, openFaultModule, type SlotFaults } from "./fault_module.ts";
import { addSoftHsmToken, provisionSoftHsm, type SoftHsm } from "./softhsm.ts";

/** Options of {@link provisionTokenGroup}. */
export interface TokenGroupOptions {
  /** How many tokens (labelled `hsm-a`, `hsm-b`, ...). Default 2. */
  tokens?: number;
  /** Each token's user PIN, in order; tokens past the list get the environment's PIN. */
  pins?: readonly string[];
  /** Also a key on the first token only (label {@link TokenGroupKeys.onlyOnFirst}). */
  keyOnFirstOnly?: boolean;
  /** Put the fault module in front of SoftHSM2. Default false. */
  withFaults?: boolean;
}

/** One token of the group. */
export interface GroupToken {
  /** Its label, also its member name. */
  readonly label: string;
  /** Its slot id (SoftHSM2 keeps it across `C_Initialize`). */
  readonly slotId: number;
  /** Its user PIN (test-only). */
  readonly pin: string;
  /** The fault module's settings for its slot, with `withFaults`. */
  readonly faults?: SlotFaults;
}

/** What `openHsm({ members })` takes for one member. */
export interface GroupMember {
  /** The member's name: its token label. */
  readonly name: string;
  /** The module to load: the fault module with `withFaults`, else SoftHSM2. */
  readonly library: string;
  /** Its token's label. */
  readonly tokenLabel: string;
  /** Its user PIN. */
  readonly pin: string;
}

/** A key on the tokens: its label and `CKA_ID` (hex). */
export interface GroupKey {
  /** `CKA_LABEL`. */
  readonly label: string;
  /** `CKA_ID` as lowercase hex. */
  readonly id: string;
}

/** The keys every token holds, and the one only the first holds. */
export interface TokenGroupKeys {
  /** AES-256, its value known here (to check results outside the HSM). */
  readonly aes: GroupKey & { readonly value: Uint8Array };
  /** An ECDSA P-256 pair (private and public key share label and id). */
  readonly ec: GroupKey & { readonly publicKey: CryptoKey };
  /** An AES key on the first token only, with `keyOnFirstOnly`. */
  readonly onlyOnFirst?: GroupKey;
}

/** A provisioned group of tokens. Dispose it to remove the tokens and the fault module's file. */
export interface TokenGroup extends AsyncDisposable {
  /** The SoftHSM2 environment the tokens live in. */
  readonly env: SoftHsm;
  /** The tokens, in order. */
  readonly tokens: readonly GroupToken[];
  /** The members for `openHsm({ members })`, one per token, each with its own PIN. */
  readonly members: readonly GroupMember[];
  /** The first token's PIN (the default PIN of members without their own). */
  readonly pin: string;
  /** The keys on the tokens. */
  readonly keys: TokenGroupKeys;
  /** The fault module in front of every token, with `withFaults`. */
  readonly faults?: FaultModule;
}

const CKF_SERIAL_RW = 0x6;
const CKU_USER = 1;
/** DER of the P-256 curve OID (1.2.840.10045.3.1.7), `CKA_EC_PARAMS`. */
const P256_PARAMS = Buffer.from("06082a8648ce3d030107", "hex");

const base64url = (s: string) => Buffer.from(s, "base64url");

/** The templates of the group's keys, with fresh key material. */
async function keyTemplates(keyOnFirstOnly: boolean) {
  const aesValue = crypto.getRandomValues(new Uint8Array(32));
  const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ]);
  const jwk = await crypto.subtle.exportKey("jwk", pair.privateKey);
  const point = Buffer.concat([Buffer.from([0x04]), base64url(jwk.x!), base64url(jwk.y!)]);
  const newId = () => Buffer.from(crypto.getRandomValues(new Uint8Array(16)));
  const aes = { label: "group-aes", id: newId() };
  const ec = { label: "group-ec", id: newId() };
  const only = { label: "only-first", id: newId() };
  const secret = (key: { label: string; id: Buffer }, value: Uint8Array) => [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
    { type: pkcs11js.CKA_LABEL, value: key.label },
    { type: pkcs11js.CKA_ID, value: key.id },
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: pkcs11js.CKA_PRIVATE, value: true },
    { type: pkcs11js.CKA_SENSITIVE, value: true },
    { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    { type: pkcs11js.CKA_ENCRYPT, value: true },
    { type: pkcs11js.CKA_DECRYPT, value: true },
    { type: pkcs11js.CKA_VALUE, value: Buffer.from(value) },
  ];
  const ecCommon = [
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_EC },
    { type: pkcs11js.CKA_LABEL, value: ec.label },
    { type: pkcs11js.CKA_ID, value: ec.id },
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: pkcs11js.CKA_EC_PARAMS, value: P256_PARAMS },
  ];
  const everywhere = [
    secret(aes, aesValue),
    [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
      ...ecCommon,
      { type: pkcs11js.CKA_PRIVATE, value: true },
      { type: pkcs11js.CKA_SENSITIVE, value: true },
      { type: pkcs11js.CKA_EXTRACTABLE, value: false },
      { type: pkcs11js.CKA_SIGN, value: true },
      { type: pkcs11js.CKA_VALUE, value: base64url(jwk.d!) },
    ],
    [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
      ...ecCommon,
      { type: pkcs11js.CKA_PRIVATE, value: false },
      { type: pkcs11js.CKA_VERIFY, value: true },
      // DER OCTET STRING around the uncompressed point.
      { type: pkcs11js.CKA_EC_POINT, value: Buffer.concat([Buffer.from([0x04, 0x41]), point]) },
    ],
  ];
  const onFirst = keyOnFirstOnly ? [secret(only, crypto.getRandomValues(new Uint8Array(32)))] : [];
  const keys: TokenGroupKeys = {
    aes: { label: aes.label, id: aes.id.toString("hex"), value: aesValue },
    ec: { label: ec.label, id: ec.id.toString("hex"), publicKey: pair.publicKey },
    ...(keyOnFirstOnly ? { onlyOnFirst: { label: only.label, id: only.id.toString("hex") } } : {}),
  };
  return { everywhere, onFirst, keys };
}

/**
 * Creates the keys on every token through a binding of its own (initialised and finalised here),
 * and returns each token's slot id.
 */
function importKeys(
  library: string,
  tokens: readonly { label: string; pin: string }[],
  everywhere: pkcs11js.Template[],
  onFirst: pkcs11js.Template[],
): number[] {
  const p = new pkcs11js.PKCS11();
  p.load(library);
  try {
    try {
      p.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
    } catch (error) {
      if (String((error as Error).message).includes("CKR_CRYPTOKI_ALREADY_INITIALIZED")) {
        throw new Error(
          `${library} is still initialised in this process (a handle left open?): ` +
            "close it before provisioning a token group, so SoftHSM2 reads the new tokens",
        );
      }
      throw error;
    }
    try {
      const slots = p.C_GetSlotList(true);
      return tokens.map(({ label, pin }, i) => {
        const slot = slots.find((s) => p.C_GetTokenInfo(s).label.trim() === label);
        if (slot === undefined) throw new Error(`SoftHSM2 shows no token labelled "${label}"`);
        const session = p.C_OpenSession(slot, CKF_SERIAL_RW);
        try {
          p.C_Login(session, CKU_USER, pin);
          for (const template of i === 0 ? [...everywhere, ...onFirst] : everywhere) {
            p.C_CreateObject(session, template);
          }
          p.C_Logout(session);
        } finally {
          p.C_CloseSession(session);
        }
        return Number(slot.length >= 8 ? slot.readBigUInt64LE(0) : slot.readUInt32LE(0));
      });
    } finally {
      p.C_Finalize();
    }
  } finally {
    p.close();
  }
}

/**
 * Provisions a temporary SoftHSM2 with `tokens` tokens holding the same keys, and the fault
 * module in front with `withFaults`. Everything it made is removed on dispose, or at once when a
 * step fails.
 */
export async function provisionTokenGroup(options: TokenGroupOptions = {}): Promise<TokenGroup> {
  const count = options.tokens ?? 2;
  if (!Number.isInteger(count) || count < 2 || count > 26) {
    throw new RangeError(`a token group has 2 to 26 tokens, got ${count}`);
  }
  const labels = Array.from({ length: count }, (_, i) => `hsm-${String.fromCharCode(97 + i)}`);
  const env = await provisionSoftHsm({
    temporary: true,
    tokenLabel: labels[0],
    pin: options.pins?.[0],
  });
  let faults: FaultModule | undefined;
  try {
    const pins = labels.map((_, i) => options.pins?.[i] ?? env.pin);
    for (let i = 1; i < count; i++) await addSoftHsmToken(env, labels[i], pins[i]);
    const { everywhere, onFirst, keys } = await keyTemplates(options.keyOnFirstOnly ?? false);
    const specs = labels.map((label, i) => ({ label, pin: pins[i] }));
    const slotIds = importKeys(env.library, specs, everywhere, onFirst);
    if (options.withFaults) faults = await openFaultModule(env.library);
    const library = faults?.library ?? env.library;
    const tokens = labels.map((label, i): GroupToken => ({
      label,
      slotId: slotIds[i],
      pin: pins[i],
      ...(faults ? { faults: faults.slot(slotIds[i]) } : {}),
    }));
    return {
      env,
      tokens,
      members: tokens.map(({ label, pin }) => ({ name: label, library, tokenLabel: label, pin })),
      pin: pins[0],
      keys,
      faults,
      async [Symbol.asyncDispose]() {
        try {
          faults?.[Symbol.dispose]();
        } finally {
          await env[Symbol.asyncDispose]();
        }
      },
    };
  } catch (error) {
    try {
      faults?.[Symbol.dispose]();
    } finally {
      await env[Symbol.asyncDispose]();
    }
    throw error;
  }
}

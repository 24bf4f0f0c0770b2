/**
 * {@link openFaultModule}: a PKCS#11 module in front of SoftHSM2 that is told at run time, per
 * slot or for all slots, to fail with a CKR code, to hang, to add latency, or to lock the user PIN
 * after N wrong tries. Tests use it for HSMs that break; benchmarks for a network HSM's round
 * trip. The module is `native/fault_pkcs11.c`, built with gcc into `.local/native/` by
 * {@link buildFaultModule} (the setup task runs it; again when the source changes).
 *
 * ```ts
 * using faults = await openFaultModule(softhsm.library);
 * await using hsm = await openHsm({ library: faults.library, ... });
 * faults.set({ delayUs: 500 }); // every slot: 500 µs a crypto call
 * faults.slot(slotId).set({ fail: CKR.DEVICE_REMOVED }); // that slot looks dead
 * faults.reset(); // all healthy again, wrong-PIN counts restarted
 * ```
 *
 * @module
 */
import { pkcs11jsDir } from "./pkcs11js.ts";

const root = new URL("../../", import.meta.url).pathname;
const dir = `${root}.local/native/`;
const source = `${root}tasks/setup/native/fault_pkcs11.c`;
const built = `${dir}fault_pkcs11.so`;

/** CK_RV codes a failing HSM answers with, for {@link FaultSettings.fail}. */
export const CKR = {
  GENERAL_ERROR: 0x05,
  DEVICE_ERROR: 0x30,
  DEVICE_REMOVED: 0x32,
  TOKEN_NOT_PRESENT: 0xe0,
} as const;

/** What the module does to the calls of the slots a setting covers. */
export interface FaultSettings {
  /** Wait this long before each crypto call (a network round trip), without using a CPU. */
  delayUs?: number;
  /** Hang every call on the slot (its sessions, C_GetTokenInfo, C_OpenSession) until cleared. */
  hang?: boolean;
  /** Answer every call on the slot with this CK_RV ({@link CKR}) instead of calling on. */
  fail?: number;
  /**
   * After this many `C_Login` calls answered `CKR_PIN_INCORRECT`, `C_Login` answers
   * `CKR_PIN_LOCKED` (and the token info shows the user PIN locked) until reset.
   */
  lockPinAfter?: number;
}

const SETTINGS: readonly (keyof FaultSettings)[] = ["delayUs", "hang", "fail", "lockPinAfter"];

/** The settings of one slot; they win over the ones for all slots. */
export interface SlotFaults {
  /** Replaces this slot's settings from the next call on, and restarts its wrong-PIN count. */
  set(settings: FaultSettings): void;
}

/** The fault module of this process. Dispose it to remove its control file (no faults). */
export interface FaultModule extends Disposable {
  /** Path of the module: pass it as `library`. */
  readonly library: string;
  /** Replaces the settings for all slots, and restarts every wrong-PIN count. */
  set(settings: FaultSettings): void;
  /** The settings of one slot (its id, as pkcs11js's slot `Buffer` or a number). */
  slot(slotId: number | bigint | Uint8Array): SlotFaults;
  /** No faults anywhere; wrong-PIN counts restart. */
  reset(): void;
}

function mtime(path: string): number {
  try {
    return Deno.statSync(path).mtime?.getTime() ?? 0;
  } catch {
    return -1;
  }
}

/**
 * Builds the module unless it is there and newer than its source; returns its path. Built into a
 * temporary file and renamed, so a process that has the old one loaded keeps working.
 */
export async function buildFaultModule(): Promise<string> {
  if (mtime(built) >= mtime(source)) return built;
  await Deno.mkdir(dir, { recursive: true });
  const headers = `${pkcs11jsDir}/includes/pkcs11`;
  const partial = `${built}.${Deno.pid}.new`;
  let gcc: Deno.CommandOutput;
  try {
    gcc = await new Deno.Command("gcc", {
      args: ["-O2", "-Wall", "-shared", "-fPIC", "-I", headers, "-o", partial, source],
      stdout: "null",
      stderr: "piped",
    }).output();
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    throw new Error("building the PKCS#11 fault module needs gcc: apt-get install gcc");
  }
  if (!gcc.success) {
    throw new Error(`gcc failed on ${source}: ${new TextDecoder().decode(gcc.stderr)}`);
  }
  await Deno.rename(partial, built);
  return built;
}

/** The control file of this process (the module reads its path once, when first loaded). */
const control = `${dir}fault_pkcs11-${Deno.pid}.control`;
/** The control file is the process's (the module reads its path once): one user at a time. */
let openInThisProcess = false;
/** Rules the module reads (`MAX_RULES`), less the one for all slots. */
const MAX_SLOT_RULES = 31;

function slotNumber(slotId: number | bigint | Uint8Array): bigint {
  if (typeof slotId === "number" || typeof slotId === "bigint") return BigInt(slotId);
  const view = new DataView(slotId.buffer, slotId.byteOffset, slotId.byteLength);
  return slotId.byteLength >= 8 ? view.getBigUint64(0, true) : BigInt(view.getUint32(0, true));
}

function checked(settings: FaultSettings): FaultSettings {
  for (const key of Object.keys(settings)) {
    if (!SETTINGS.includes(key as keyof FaultSettings)) {
      throw new TypeError(`unknown fault setting "${key}": use ${SETTINGS.join(", ")}`);
    }
  }
  for (const key of ["delayUs", "fail", "lockPinAfter"] as const) {
    const value = settings[key];
    if (value !== undefined && !(Number.isInteger(value) && value >= 0)) {
      throw new RangeError(`fault setting ${key} must be a whole number >= 0, got ${value}`);
    }
  }
  return settings;
}

/** One line of the control file (see `native/fault_pkcs11.c`); `inherit` marks slot rules. */
function rule(s: FaultSettings, epoch: number, inherit: boolean): string {
  const unset = inherit ? -1 : 0;
  const fields = [s.delayUs ?? unset, s.hang ? 1 : 0, s.fail ?? 0, s.lockPinAfter ?? unset, epoch];
  return fields.join(" ");
}

/**
 * Builds the module and points it at `inner` (the real module's path). The module learns `inner`
 * when first loaded, so one real module per process, and one fault module open at a time.
 */
export async function openFaultModule(inner: string): Promise<FaultModule> {
  const library = await buildFaultModule();
  const first = Deno.env.get("FAULT_PKCS11_MODULE");
  if (first !== undefined && first !== inner) {
    throw new Error(`this process's fault module already forwards to ${first}, not ${inner}`);
  }
  if (openInThisProcess) {
    throw new Error("a fault module is already open in this process: dispose it first");
  }
  openInThisProcess = true;
  Deno.env.set("FAULT_PKCS11_MODULE", inner);
  Deno.env.set("FAULT_PKCS11_CONTROL", control);
  let epoch = 0;
  let all = rule({}, epoch, false);
  const slots = new Map<bigint, string>();
  const write = () => {
    const lines = [`all ${all}`, ...[...slots].map(([id, r]) => `slot ${id} ${r}`)];
    Deno.writeTextFileSync(`${control}.new`, lines.join("\n") + "\n");
    Deno.renameSync(`${control}.new`, control); // the module never reads half a file
  };
  write();
  return {
    library,
    set(settings) {
      all = rule(checked(settings), ++epoch, false);
      write();
    },
    slot(slotId) {
      const id = slotNumber(slotId);
      return {
        set(settings) {
          if (Object.values(checked(settings)).every((v) => v === undefined)) {
            slots.delete(id); // the same as an empty rule, and calls need not look up their slot
            write();
            return;
          }
          if (!slots.has(id) && slots.size === MAX_SLOT_RULES) {
            throw new RangeError(
              `the fault module takes rules for ${MAX_SLOT_RULES} slots at most`,
            );
          }
          slots.set(id, rule(checked(settings), ++epoch, true));
          write();
        },
      };
    },
    reset() {
      slots.clear();
      all = rule({}, ++epoch, false);
      write();
    },
    [Symbol.dispose]() {
      openInThisProcess = false;
      Deno.removeSync(control);
    },
  };
}

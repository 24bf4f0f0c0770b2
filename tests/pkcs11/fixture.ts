/**
 * Shared pieces of the PKCS#11 tests: a private throwaway SoftHSM2 token
 * (through tasks/setup/softhsm.ts) with a pool opened on it, and a second,
 * independent binding to the same module to act behind the pool's back.
 */
import pkcs11js from "pkcs11js";
import { provisionSoftHsm, type SoftHsm } from "../../tasks/setup/softhsm.ts";
import { type Hsm, openHsm, type OpenHsmOptions } from "../../adapters/pkcs11/mod.ts";

/** A temp token plus a pool on it; disposing closes the pool and deletes the token. */
export interface TestHsm extends AsyncDisposable {
  env: SoftHsm;
  hsm: Hsm;
}

/** Provisions a fresh temp token and opens a pool on it. */
export async function openTestHsm(options: Partial<OpenHsmOptions> = {}): Promise<TestHsm> {
  const env = await provisionSoftHsm({ temporary: true });
  let hsm: Hsm;
  try {
    hsm = await openHsm({
      library: env.library,
      tokenLabel: env.tokenLabel,
      pin: env.pin,
      ...options,
    });
  } catch (error) {
    await env[Symbol.asyncDispose]();
    throw error;
  }
  return {
    env,
    hsm,
    async [Symbol.asyncDispose]() {
      try {
        await hsm.close();
      } finally {
        await env[Symbol.asyncDispose]();
      }
    },
  };
}

/**
 * A second pkcs11js binding to the module, as another library in the same
 * process would have: its `C_Initialize` finds the module initialised, and it
 * never finalises it.
 */
export class OtherBinding implements Disposable {
  readonly pkcs11: pkcs11js.PKCS11 = new pkcs11js.PKCS11();
  readonly initialisedHere: boolean;

  constructor(library: string) {
    this.pkcs11.load(library);
    try {
      this.pkcs11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
      this.initialisedHere = true;
    } catch (error) {
      if (!String((error as Error).message).includes("CKR_CRYPTOKI_ALREADY_INITIALIZED")) {
        throw error;
      }
      this.initialisedHere = false;
    }
  }

  /** The slot of the token with this label. */
  slot(label: string): Buffer {
    const slot = this.pkcs11.C_GetSlotList(true).find((s) =>
      this.pkcs11.C_GetTokenInfo(s).label.trim() === label
    );
    if (!slot) throw new Error(`no token "${label}"`);
    return slot;
  }

  [Symbol.dispose](): void {
    if (this.initialisedHere) this.pkcs11.C_Finalize();
    this.pkcs11.close();
  }
}

/** Whether the module is initialised right now, asked through a throwaway binding. */
export function moduleIsInitialised(library: string): boolean {
  using other = new OtherBinding(library);
  return !other.initialisedHere;
}

/**
 * Watches the event loop with a 5 ms interval timer while `work` runs, and
 * returns how many ticks fired and the worst gap between two of them: a loop
 * blocked by HSM work shows up as a gap of seconds.
 */
export async function timerGapsDuring(
  work: () => Promise<unknown>,
): Promise<{ ticks: number; worstGapMs: number }> {
  let last = performance.now();
  let worstGapMs = 0;
  let ticks = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    worstGapMs = Math.max(worstGapMs, now - last);
    last = now;
    ticks++;
  }, 5);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  return { ticks, worstGapMs };
}

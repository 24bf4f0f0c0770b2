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
  /** pkcs11-spy between the pool and the token, when asked for. */
  spy?: Pkcs11Spy;
}

/** Provisions a fresh temp token and opens a pool on it (through pkcs11-spy with `spied`). */
export async function openTestHsm(
  options: Partial<OpenHsmOptions> = {},
  { spied = false } = {},
): Promise<TestHsm> {
  const env = await provisionSoftHsm({ temporary: true });
  const spy = spied ? new Pkcs11Spy(env.library) : undefined;
  let hsm: Hsm;
  try {
    hsm = await openHsm({
      library: spy?.library ?? env.library,
      tokenLabel: env.tokenLabel,
      pin: env.pin,
      ...options,
    });
  } catch (error) {
    spy?.[Symbol.dispose]();
    await env[Symbol.asyncDispose]();
    throw error;
  }
  return {
    env,
    hsm,
    spy,
    async [Symbol.asyncDispose]() {
      try {
        await hsm.close();
      } finally {
        spy?.[Symbol.dispose]();
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

/** Where Debian's `opensc` package puts OpenSC's logging PKCS#11 module. */
const SPY_LOCATIONS = [
  "/usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so",
  "/usr/lib/aarch64-linux-gnu/pkcs11/pkcs11-spy.so",
  "/usr/lib/pkcs11/pkcs11-spy.so",
];

function findSpy(): string {
  const found = SPY_LOCATIONS.find((path) => {
    try {
      return Deno.statSync(path).isFile;
    } catch {
      return false;
    }
  });
  if (found !== undefined) return found;
  throw new Error(
    `pkcs11-spy.so not found (looked in ${SPY_LOCATIONS.join(", ")}): ` +
      "install the Debian package opensc (apt-get install opensc)",
  );
}

/**
 * The spy reads PKCS11SPY_OUTPUT once per process (the library stays
 * loaded), so every spy of the test process shares one log, deleted when
 * the process ends; each spy counts only what was logged after it started.
 */
let sharedLog: string | undefined;

/**
 * OpenSC's `pkcs11-spy` in front of the real module: open a handle on
 * {@link Pkcs11Spy.library} and every PKCS#11 call made through it is
 * logged, so tests count calls (`C_Login`) independently of the adapter's
 * own counters. The log holds the PINs it saw: it lives in a temp file
 * deleted at exit.
 */
export class Pkcs11Spy implements Disposable {
  /** The spy module: pass it as `library`. */
  readonly library: string = findSpy();
  readonly #from: number;
  readonly #saved: [string, string | undefined][];

  /** Puts the spy in front of `realLibrary` for handles opened from now on. */
  constructor(realLibrary: string) {
    if (sharedLog === undefined) {
      const log = sharedLog = Deno.makeTempFileSync({ prefix: "pkcs11-spy-", suffix: ".log" });
      globalThis.addEventListener("unload", () => Deno.removeSync(log));
    }
    this.#from = Deno.statSync(sharedLog).size;
    this.#saved = ["PKCS11SPY", "PKCS11SPY_OUTPUT"].map((name) => [name, Deno.env.get(name)]);
    Deno.env.set("PKCS11SPY", realLibrary);
    Deno.env.set("PKCS11SPY_OUTPUT", sharedLog);
  }

  /** How many calls of the PKCS#11 function `name` (`"C_Login"`) the spy logged since it started. */
  calls(name: string): number {
    return this.#log().match(new RegExp(`^\\d+: ${name}$`, "gm"))?.length ?? 0;
  }

  /** How many calls returned a code matching `ckr` (a RegExp source) since the spy started. */
  returned(ckr: string): number {
    return this.#log().match(new RegExp(`Returned:\\s+\\d+ ${ckr}\\b`, "g"))?.length ?? 0;
  }

  #log(): string {
    return new TextDecoder().decode(Deno.readFileSync(sharedLog!).subarray(this.#from));
  }

  [Symbol.dispose](): void {
    for (const [name, value] of this.#saved) {
      if (value === undefined) Deno.env.delete(name);
      else Deno.env.set(name, value);
    }
  }
}

/** Runs `pkcs11-tool` (OpenSC) on the token, logged in; throws with its output on failure. */
export async function pkcs11Tool(env: SoftHsm, args: string[]): Promise<string> {
  const out = await new Deno.Command("pkcs11-tool", {
    args: [
      "--module",
      env.library,
      "--token-label",
      env.tokenLabel,
      "--login",
      "--pin",
      env.pin,
      ...args,
    ],
    env: { SOFTHSM2_CONF: env.conf },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`pkcs11-tool ${args.join(" ")} failed: ${text}`);
  return text;
}

/** Logs the token out behind the pool's back, as another library of the process would. */
export function logOutBehindTheBack(env: SoftHsm): void {
  using other = new OtherBinding(env.library);
  const session = other.pkcs11.C_OpenSession(other.slot(env.tokenLabel), 0x6);
  other.pkcs11.C_Logout(session); // login state is the process's: this logs everyone out
  other.pkcs11.C_CloseSession(session);
}

/**
 * Finalises the module behind the pool's back, as a client library that
 * restarts does: a binding of its own that calls `C_Finalize`.
 */
export function finaliseBehindTheBack(library: string): void {
  const other = new pkcs11js.PKCS11();
  other.load(library);
  try {
    other.C_Finalize();
  } finally {
    other.close();
  }
}

/**
 * The PKCS#11 module of the process: the `npm:pkcs11js` binding, and each
 * module library loaded and `C_Initialize`d once, shared by every handle,
 * counted, and `C_Finalize`d by its last user when we initialised it. When
 * someone else in the process finalises it (a client library restarting),
 * {@link Module.recover} initialises it again; the sessions of the old life
 * are marked dead then.
 *
 * @module
 */
import type pkcs11jsTypes from "pkcs11js";
import { CKR, errorCode, HsmError, toHsmError } from "./errors.ts";
import { findPkcs11Module } from "./library.ts";

/** What a user runs once to build the binding's native addon (see `install.ts`). */
export const INSTALL_COMMAND = "deno run -A jsr:@poolkit/pool/pkcs11/install";

async function loadBinding(): Promise<typeof pkcs11jsTypes> {
  try {
    const loaded = await import("pkcs11js");
    return (loaded as { default?: typeof pkcs11jsTypes }).default ?? loaded;
  } catch (error) {
    if (!/pkcs11\.node/.test(String((error as Error)?.message))) throw error;
    throw new HsmError(
      "the native addon of npm:pkcs11js is not built (Deno does not run npm build scripts): " +
        `run \`${INSTALL_COMMAND}\` once in your project's folder (it needs node, python3, make ` +
        "and g++; Debian: apt-get install nodejs npm python3 make g++)",
      { operation: "load", cause: error },
    );
  }
}

/** The `pkcs11js` module: its class and constants. */
export const pkcs11js: typeof pkcs11jsTypes = await loadBinding();

/** Something that holds a session of a module: marked dead when the module forgets it. */
export interface SessionHolder {
  /** The session is gone (its number was reissued, or the module was initialised again). */
  markDead(): void;
}

/** One module library, loaded once per process. Get it with {@link acquireModule}. */
export class Module {
  /** The library's real path. */
  readonly path: string;
  /** The binding. */
  readonly pkcs11: pkcs11jsTypes.PKCS11;
  /** Whether the current initialisation is ours, so ours is the `C_Finalize`. */
  initialisedByUs: boolean;
  /** Times {@link Module.recover} initialised the module again. */
  reinitialisations = 0;
  /** Handles that hold the module. */
  refs = 0;
  /**
   * Live sessions by handle number. Modules reuse numbers, so a new session
   * with a number we still hold means the old one is dead.
   */
  readonly sessions: Map<string, SessionHolder> = new Map();

  /** Loads the library into a binding of its own and initialises it (or finds it initialised). */
  constructor(path: string) {
    this.path = path;
    this.pkcs11 = new pkcs11js.PKCS11();
    try {
      this.pkcs11.load(path);
      pinLibrary(path);
    } catch (error) {
      throw new HsmError(
        `cannot load the PKCS#11 module ${path}: ${(error as Error).message}; ` +
          `is it a PKCS#11 module for this CPU? (SoftHSM2: apt-get install softhsm2)`,
        { operation: "load", cause: error },
      );
    }
    try {
      this.initialisedByUs = this.#initialise();
    } catch (error) {
      this.pkcs11.close();
      throw error;
    }
  }

  /**
   * `C_Initialize` with OS locking (calls run on several threads); `false`
   * when someone else in the process already initialised the module.
   */
  #initialise(): boolean {
    try {
      this.pkcs11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
      return true;
    } catch (error) {
      const wrapped = toHsmError(error, "C_Initialize");
      if (wrapped.code === CKR.CRYPTOKI_ALREADY_INITIALIZED) return false;
      throw wrapped;
    }
  }

  /**
   * Initialises the module again if someone finalised it (one `C_GetInfo`
   * tells); returns whether it did. Every session of the old life is dead.
   */
  recover(): boolean {
    try {
      this.pkcs11.C_GetInfo();
      return false;
    } catch (error) {
      if (errorCode(error) !== CKR.CRYPTOKI_NOT_INITIALIZED) throw toHsmError(error, "C_GetInfo");
    }
    this.initialisedByUs = this.#initialise();
    this.reinitialisations++;
    this.forgetSessions();
    return true;
  }

  /** Marks every session dead without calling the module. */
  forgetSessions(): void {
    const holders = [...this.sessions.values()];
    this.sessions.clear();
    for (const holder of holders) holder.markDead();
  }
}

/** A counted reference to a module; `release()` it exactly once. */
export interface ModuleRef {
  /** The shared module. */
  readonly module: Module;
  /** Drops the reference; the last one finalises (if we initialised) and unloads. */
  release(): void;
}

const modules = new Map<string, Module>();

function realPath(path: string): string {
  try {
    return Deno.realPathSync(path);
  } catch {
    return path;
  }
}

/**
 * One extra load of each module library that is never closed: unloading
 * SoftHSM (and its OpenSSL) after `C_Finalize` and loading it again leaves
 * exit handlers that double-free at exit (SoftHSMv2 #413, #548).
 */
const pinned = new Map<string, unknown>();

function pinLibrary(path: string): void {
  if (pinned.has(path)) return;
  const keeper = new pkcs11js.PKCS11();
  keeper.load(path);
  pinned.set(path, keeper);
}

/** Loads and initialises the module (once per process) and returns a counted reference. */
export function acquireModule(library?: string): ModuleRef {
  const path = realPath(findPkcs11Module(library));
  let module = modules.get(path);
  if (module === undefined) modules.set(path, module = new Module(path));
  module.refs++;
  const held = module;
  let released = false;
  return {
    module: held,
    release() {
      if (released) return;
      released = true;
      if (--held.refs > 0) return;
      modules.delete(held.path);
      held.forgetSessions();
      if (held.initialisedByUs) {
        try {
          held.pkcs11.C_Finalize();
        } catch {
          // Already finalised behind our back: nothing left to release.
        }
      }
      held.pkcs11.close();
    },
  };
}

/** What the registry holds for a library path, for tests and diagnostics. */
export function registeredModule(
  library: string,
): { refs: number; initialisedByUs: boolean; sessions: number } | undefined {
  const module = modules.get(realPath(library));
  return module && {
    refs: module.refs,
    initialisedByUs: module.initialisedByUs,
    sessions: module.sessions.size,
  };
}

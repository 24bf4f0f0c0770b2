/**
 * The process-wide registry of loaded PKCS#11 modules.
 *
 * A module is `C_Initialize`d once per process and `C_Finalize`d only when
 * its last user lets go, so every handle of this adapter shares one entry per
 * module, keyed by the library's real path and reference-counted. When
 * `C_Initialize` answers `CKR.CRYPTOKI_ALREADY_INITIALIZED`, someone else in
 * the process owns the module: we use it and never finalise it.
 *
 * @module
 */
import pkcs11js from "pkcs11js";
import { CKR } from "./ckr.ts";
import { HsmError, toHsmError } from "./errors.ts";
import { findPkcs11Module } from "./library.ts";

/** One loaded module, shared by every handle of the process. */
export interface LoadedModule {
  /** The library's real path (the registry key). */
  readonly path: string;
  /** The pkcs11js binding. */
  readonly pkcs11: pkcs11js.PKCS11;
  /** Whether our `C_Initialize` succeeded, so ours is the `C_Finalize`. */
  readonly initialisedByUs: boolean;
  /** Handles that hold the module. */
  refs: number;
  /**
   * Live session wrappers by handle number. The module reuses handle numbers,
   * so a new session with a number we still hold means the old one is dead.
   */
  readonly sessions: Map<string, { markDead(): void }>;
}

/** A counted reference to a module; `release()` it exactly once. */
export interface ModuleRef {
  /** The shared module. */
  readonly module: LoadedModule;
  /** Drops the reference; the last one finalises (if we initialised) and unloads. */
  release(): void;
}

const modules = new Map<string, LoadedModule>();

function realPath(path: string): string {
  try {
    return Deno.realPathSync(path);
  } catch {
    return path;
  }
}

/**
 * One extra load of each module library that is never closed, so the
 * library stays mapped for the life of the process. Unloading SoftHSM (and
 * the OpenSSL it brings in) after `C_Finalize` and loading it again later
 * leaves exit handlers that double-free when the process exits (SoftHSMv2
 * #413, #548); with the library kept loaded, `C_Finalize` still runs when the
 * last user closes, but the code and OpenSSL's state are never torn down
 * until exit. Costs one idle dlopen handle per library.
 */
const pinned = new Map<string, unknown>();

/** Keeps the library at `path` loaded until the process exits (idempotent). */
export function pinLibrary(path: string): void {
  if (pinned.has(path)) return;
  const keeper = new pkcs11js.PKCS11();
  keeper.load(path); // throws like any load; the caller's own load reports it better
  pinned.set(path, keeper);
}

/**
 * Loads the library at `path` into a binding of its own and initialises it
 * (or finds it initialised by someone else). {@link acquireModule} shares
 * one per library; the per-request pattern makes one per request.
 */
export function loadModule(path: string): LoadedModule {
  const pkcs11 = new pkcs11js.PKCS11();
  try {
    pkcs11.load(path);
    pinLibrary(path);
  } catch (error) {
    throw new HsmError(
      `cannot load the PKCS#11 module ${path}: ${(error as Error).message}; ` +
        `is it a PKCS#11 module for this CPU? (SoftHSM2: apt-get install softhsm2)`,
      { operation: "load", cause: error },
    );
  }
  let initialisedByUs = true;
  try {
    pkcs11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  } catch (error) {
    const wrapped = toHsmError(error, "C_Initialize");
    if (wrapped.code !== CKR.CRYPTOKI_ALREADY_INITIALIZED) {
      pkcs11.close();
      throw wrapped;
    }
    initialisedByUs = false;
  }
  return { path, pkcs11, initialisedByUs, refs: 0, sessions: new Map() };
}

/**
 * Loads and initialises the module (once per process) and returns a counted
 * reference to it. Initialisation asks for OS locking
 * (`CKF_OS_LOCKING_OK`): the async calls run on other threads, and without
 * locks SoftHSM corrupts its heap as soon as two are in flight.
 */
export function acquireModule(library?: string): ModuleRef {
  const path = realPath(findPkcs11Module(library));
  let module = modules.get(path);
  if (module === undefined) {
    module = loadModule(path);
    modules.set(path, module);
  }
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
      for (const session of held.sessions.values()) session.markDead();
      held.sessions.clear();
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

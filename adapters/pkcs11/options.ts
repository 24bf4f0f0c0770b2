/**
 * The options of `openHsm()`, their checks, and the engine they choose.
 *
 * @module
 */
import type { PoolSettings } from "../../pool/types.ts";
import { checkThreads, createWorkerEngine } from "./dispatch.ts";
import type { CryptoEngine } from "./engine.ts";
import { createAutoEngine } from "./engine_auto.ts";
import { asyncEngine, syncEngine } from "./engine_local.ts";
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
   * How crypto calls run: `"auto"` (default: chooses by load, see
   * `engine_auto.ts`), `"async"` (pkcs11js's `*Async` calls on libuv's
   * thread pool, the event loop stays free), `"workers"` (batches of
   * synchronous calls on Deno Workers, see `dispatch.ts`), `"sync"` (on the
   * calling thread: it blocks the event loop), or your own
   * {@link CryptoEngine}.
   */
  engine?: "auto" | "async" | "sync" | "workers" | CryptoEngine;
  /** Threads of the `"workers"` and `"auto"` engines. Default: cores minus one, from 1 to 4. */
  workerThreads?: number;
  /**
   * How long `Hsm.encrypt` and `Hsm.decrypt` keep token keys found by label
   * or id, in ms (`C_FindObjects` costs more than the crypto). A key added
   * under a label is used within this time. Default 1000; 0 looks keys up
   * on every call.
   */
  keyCacheMs?: number;
}

/** Checks what can be checked before anything is opened; throws a TypeError or RangeError. */
export function checkOptions(options: OpenHsmOptions): void {
  if (typeof options?.pin !== "string" || options.pin === "") {
    throw new TypeError("openHsm needs a pin (for example from PKCS11_PIN)");
  }
  const engine = options.engine;
  const named = engine === undefined || engine === "auto" || engine === "async" ||
    engine === "sync" || engine === "workers";
  if (!named && !(typeof engine === "object" && typeof engine?.encrypt === "function")) {
    throw new TypeError(
      `engine must be "auto", "async", "sync", "workers" or a CryptoEngine, got ${String(engine)}`,
    );
  }
  if (engine === undefined || engine === "auto" || engine === "workers") {
    checkThreads(options.workerThreads);
  }
  const ttl = options.keyCacheMs;
  if (ttl !== undefined && !(ttl >= 0)) {
    throw new RangeError(`keyCacheMs must be 0 or more, got ${ttl}`);
  }
}

/** The engine to use, and how to close it when this handle owns it. */
export function makeEngine(
  options: OpenHsmOptions,
  library: string,
): { engine: CryptoEngine; close?: () => Promise<void> } {
  const engine = options.engine;
  if (engine === "async") return { engine: asyncEngine };
  if (engine === "sync") return { engine: syncEngine };
  if (engine === undefined || engine === "auto" || engine === "workers") {
    const threads = options.workerThreads;
    const workers = engine === "workers"
      ? createWorkerEngine({ library, threads })
      : createAutoEngine({ library, threads });
    return { engine: workers, close: () => workers.close() };
  }
  return { engine };
}

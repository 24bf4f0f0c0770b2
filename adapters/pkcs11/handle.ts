/**
 * A PKCS#11 session handle that knows whether it is still ours.
 *
 * Modules reuse session handle numbers: once a session is closed, the next
 * `C_OpenSession` may return the same number. A {@link SessionHandle} is
 * therefore closed at most once and refuses to be used afterwards, and it is
 * marked dead (without calling the module) when the module hands its number
 * to a newer session, which only happens after the old one was closed
 * behind our back.
 *
 * @module
 */
import type pkcs11js from "pkcs11js";
import { HsmError, toHsmError } from "./errors.ts";
import type { LoadedModule } from "./registry.ts";

/** `CKF_SERIAL_SESSION | CKF_RW_SESSION`. */
const RW_SERIAL = 0x4 | 0x2;
/** `CKS_RO_USER_FUNCTIONS` and `CKS_RW_USER_FUNCTIONS`: the session sees a logged-in user. */
const USER_STATES: ReadonlySet<number> = new Set([1, 3]);

let nextId = 1;

/** One R/W serial session of a loaded module. */
export class SessionHandle {
  /** A process-unique number for logs and events (not the PKCS#11 handle). */
  readonly id: number = nextId++;
  /** The module the session belongs to. */
  readonly module: LoadedModule;
  /** The slot the session was opened on. */
  readonly slot: Buffer;
  #handle: Buffer;
  #key: string;
  #state: "open" | "closed" | "dead" = "open";

  /** Opens a R/W serial session on `slot` (`C_OpenSession`). */
  constructor(module: LoadedModule, slot: Buffer) {
    let handle: Buffer;
    try {
      handle = module.pkcs11.C_OpenSession(slot, RW_SERIAL);
    } catch (error) {
      throw toHsmError(error, "C_OpenSession");
    }
    this.module = module;
    this.slot = slot;
    this.#handle = handle;
    this.#key = handle.toString("hex");
    // The module reissued this number: whoever held it lost its session.
    module.sessions.get(this.#key)?.markDead();
    module.sessions.set(this.#key, this);
  }

  /** `true` once closed or found dead; the handle must not be used then. */
  get closed(): boolean {
    return this.#state !== "open";
  }

  /** The raw PKCS#11 handle. Throws once the session is closed or dead. */
  get handle(): Buffer {
    if (this.#state !== "open") {
      throw new HsmError(`session ${this.id} is ${this.#state}; acquire another one`, {
        operation: "session",
      });
    }
    return this.#handle;
  }

  /** `C_GetSessionInfo`. Throws an {@link HsmError} when the session is gone. */
  info(): pkcs11js.SessionInfo {
    const handle = this.handle;
    try {
      return this.module.pkcs11.C_GetSessionInfo(handle);
    } catch (error) {
      throw toHsmError(error, "C_GetSessionInfo");
    }
  }

  /** Whether the session is open and sees a logged-in user (one cheap `C_GetSessionInfo`). */
  isLoggedIn(): boolean {
    if (this.#state !== "open") return false;
    try {
      return USER_STATES.has(this.module.pkcs11.C_GetSessionInfo(this.#handle).state);
    } catch {
      return false;
    }
  }

  /** Marks the session dead without calling the module: its number belongs to someone else now. */
  markDead(): void {
    if (this.#state !== "open") return;
    this.#state = "dead";
    this.#forget();
  }

  /** `C_CloseSession`, at most once. Errors (already closed elsewhere) are ignored. */
  close(): void {
    if (this.#state !== "open") return;
    this.#state = "closed";
    this.#forget();
    try {
      this.module.pkcs11.C_CloseSession(this.#handle);
    } catch {
      // Closed behind our back (C_CloseAllSessions, token removed): nothing to do.
    }
  }

  #forget(): void {
    if (this.module.sessions.get(this.#key) === this) this.module.sessions.delete(this.#key);
  }
}

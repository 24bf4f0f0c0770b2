/**
 * How a crypto call reaches the module. The rest of the adapter only builds
 * mechanisms and buffers and hands them to a {@link CryptoEngine}; which
 * thread runs the call is the engine's business (see `dispatch.ts`).
 *
 * @module
 */
import type { Buffer } from "node:buffer";
import type pkcs11js from "pkcs11js";
import { CKR } from "./ckr.ts";
import { toHsmError } from "./errors.ts";
import type { SessionHandle } from "./handle.ts";
import { NATIVE } from "./native.ts";

/**
 * One single-part call with bytes out: `*Init`, then `C_Encrypt`/`C_Decrypt`/`C_Sign`.
 * `out`, when given (`outLength` bytes), is where the engine may write the
 * result (then it returns a view of it); an engine may also ignore it.
 */
export type BytesCall = (
  session: SessionHandle,
  mechanism: pkcs11js.Mechanism,
  key: Buffer,
  input: Uint8Array,
  outLength: number,
  out?: Uint8Array<ArrayBuffer>,
) => Promise<Uint8Array<ArrayBuffer>>;

/** A single-part PKCS#11 crypto call: `*Init` then one `C_Encrypt`/`C_Sign`/... */
export interface CryptoEngine {
  /** Short name for stats and benchmarks. */
  readonly name: string;
  /** `C_EncryptInit` + `C_Encrypt`; `outLength` is the output buffer size. */
  readonly encrypt: BytesCall;
  /** `C_DecryptInit` + `C_Decrypt`. */
  readonly decrypt: BytesCall;
  /** `C_SignInit` + `C_Sign`. */
  readonly sign: BytesCall;
  /** `C_VerifyInit` + `C_Verify`: `false` on `CKR_SIGNATURE_INVALID`. */
  verify(
    session: SessionHandle,
    mechanism: pkcs11js.Mechanism,
    key: Buffer,
    input: Uint8Array,
    signature: Uint8Array,
  ): Promise<boolean>;
  /** `C_DigestInit` + `C_Digest`. */
  digest(
    session: SessionHandle,
    mechanism: pkcs11js.Mechanism,
    input: Uint8Array,
    outLength: number,
  ): Promise<Uint8Array<ArrayBuffer>>;
  /**
   * Resolves once no call of `session` runs on another thread, so the
   * session may be closed. Engines that never leave a call running after
   * its promise settled need not have it.
   */
  settled?(session: SessionHandle): Promise<void>;
}

/**
 * Calls in flight per session, for {@link CryptoEngine.settled}: a session
 * must not be closed (a forced pool close) while another thread still runs
 * a call on it.
 */
export class SessionActivity {
  // An entry stays for the session's life (a WeakMap: it goes with the session), so a call
  // allocates nothing; the waiters' list exists only while someone waits.
  readonly #running = new WeakMap<SessionHandle, { calls: number; idle?: (() => void)[] }>();

  /** Counts `calls` more calls of `session` as running. */
  begin(session: SessionHandle, calls = 1): void {
    const entry = this.#running.get(session);
    if (entry === undefined) this.#running.set(session, { calls });
    else entry.calls += calls;
  }

  /** Counts `calls` of `session` as done; wakes `settled()` when none is left. */
  end(session: SessionHandle, calls = 1): void {
    const entry = this.#running.get(session);
    if (entry === undefined || (entry.calls -= calls) > 0) return;
    const idle = entry.idle;
    if (idle === undefined) return;
    entry.idle = undefined;
    for (const resolve of idle) resolve();
  }

  /** Resolves once no call of `session` is running. */
  settled(session: SessionHandle): Promise<void> {
    const entry = this.#running.get(session);
    if (entry === undefined || entry.calls <= 0) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    (entry.idle ??= []).push(resolve);
    return promise;
  }
}

/** Whether an error from `C_Verify` just means "this signature does not match". */
export function isBadSignature(code: number | undefined): boolean {
  return code === CKR.SIGNATURE_INVALID || code === CKR.SIGNATURE_LEN_RANGE;
}

/**
 * Runs `*Init` synchronously (pkcs11js has no async `*Init`). Shared by the
 * engines that run on the calling thread's module binding.
 */
export function init(
  pkcs11: pkcs11js.PKCS11,
  fn: "C_EncryptInit" | "C_DecryptInit" | "C_SignInit" | "C_VerifyInit",
  handle: Buffer,
  mechanism: pkcs11js.Mechanism,
  key: Buffer,
): void {
  try {
    NATIVE[fn].call(pkcs11, handle, mechanism, key);
  } catch (error) {
    throw toHsmError(error, fn);
  }
}

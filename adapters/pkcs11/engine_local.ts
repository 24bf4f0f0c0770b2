/**
 * The two engines that call the module from this thread's binding:
 * {@link asyncEngine} runs each call on libuv's thread pool, as pkcs11js's
 * `*Async` variants do but through the binding's native `*Callback`
 * methods, without pkcs11js's wrappers (the event loop stays free, but each
 * call costs a hand-off to another thread and back), {@link syncEngine}
 * calls the module right here (fastest per call, but blocks the event loop
 * for its duration). Both call `*Init` synchronously: pkcs11js has no other.
 *
 * @module
 */
import type pkcs11js from "pkcs11js";
import { toHsmError } from "./errors.ts";
import {
  type BytesCall,
  type CryptoEngine,
  init,
  isBadSignature,
  SessionActivity,
} from "./engine.ts";
import type { SessionHandle } from "./handle.ts";
import { NATIVE, type NativeDone, nonNull } from "./native.ts";

/** The `*Init` function and the call of each bytes-out operation. */
export const STEPS = {
  encrypt: ["C_EncryptInit", "C_Encrypt"],
  decrypt: ["C_DecryptInit", "C_Decrypt"],
  sign: ["C_SignInit", "C_Sign"],
} as const;

type BytesName = "C_Encrypt" | "C_Decrypt" | "C_Sign" | "C_Digest";

/** The binding's thread-pool variant of each call. */
const CALLBACK = {
  C_Encrypt: "C_EncryptCallback",
  C_Decrypt: "C_DecryptCallback",
  C_Sign: "C_SignCallback",
  C_Digest: "C_DigestCallback",
} as const;

/** Sessions with a call on libuv's thread pool: a session is not closed under its call. */
const activity = new SessionActivity();

/** The first `length` bytes of `out` (itself when it was filled): no copy, no new buffer. */
export function filled(out: Uint8Array<ArrayBuffer>, length: number): Uint8Array<ArrayBuffer> {
  return length === out.length ? out : out.subarray(0, length);
}

/**
 * `name` (`C_Encrypt`, ...) on libuv's thread pool, through the binding's
 * native `*Callback` method: one promise and one callback per call.
 * pkcs11js hands raw pointers to `input` and `out` to the other thread
 * without keeping them alive; the binding keeps a reference to `done` until
 * it runs, and `done` refers to both buffers: they cannot be collected
 * while the call runs.
 */
export function callAsync(
  session: SessionHandle,
  handle: Uint8Array,
  name: BytesName,
  input: Uint8Array,
  out: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array<ArrayBuffer>> {
  const { pkcs11 } = session.module;
  return new Promise((resolve, reject) => {
    const done: NativeDone = (error, length) => {
      activity.end(session);
      if (error !== null) reject(toHsmError(error, name));
      else resolve(filled(out, length as number));
      void input; // held by this closure until the call completes
    };
    try {
      NATIVE[CALLBACK[name]].call(pkcs11, handle, nonNull(input), out, done);
    } catch (error) {
      return reject(toHsmError(error, name));
    }
    activity.begin(session);
  });
}

function asyncBytes(step: keyof typeof STEPS): BytesCall {
  const [initName, name] = STEPS[step];
  return (session, mechanism, key, input, outLength, out) => {
    const handle = session.handle;
    init(session.module.pkcs11, initName, handle, mechanism, key);
    return callAsync(session, handle, name, input, out ?? new Uint8Array(outLength));
  };
}

/** Every crypto call off the event loop, on pkcs11js's worker threads. */
export const asyncEngine: CryptoEngine = {
  name: "async",
  encrypt: asyncBytes("encrypt"),
  decrypt: asyncBytes("decrypt"),
  sign: asyncBytes("sign"),
  verify(session, mechanism, key, input, signature) {
    const { pkcs11 } = session.module;
    const handle = session.handle;
    init(pkcs11, "C_VerifyInit", handle, mechanism, key);
    return new Promise((resolve, reject) => {
      const done: NativeDone = (error) => {
        activity.end(session);
        if (error === null) return resolve(true);
        const wrapped = toHsmError(error, "C_Verify");
        if (isBadSignature(wrapped.code)) resolve(false);
        else reject(wrapped);
        void [input, signature]; // held by this closure until the call completes
      };
      try {
        NATIVE.C_VerifyCallback.call(pkcs11, handle, nonNull(input), nonNull(signature), done);
      } catch (error) {
        return reject(toHsmError(error, "C_Verify"));
      }
      activity.begin(session);
    });
  },
  digest(session, mechanism, input, outLength) {
    const handle = session.handle;
    try {
      NATIVE.C_DigestInit.call(session.module.pkcs11, handle, mechanism);
    } catch (error) {
      return Promise.reject(toHsmError(error, "C_DigestInit"));
    }
    return callAsync(session, handle, "C_Digest", input, new Uint8Array(outLength));
  },
  settled: (session) => activity.settled(session),
};

function syncCall<T>(operation: string, fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (error) {
    return Promise.reject(toHsmError(error, operation));
  }
}

function syncBytes(step: keyof typeof STEPS): BytesCall {
  const [initName, name] = STEPS[step];
  return (session, mechanism, key, input, outLength, out) => {
    const pkcs11: pkcs11js.PKCS11 = session.module.pkcs11;
    const handle = session.handle;
    init(pkcs11, initName, handle, mechanism, key);
    const output = out ?? new Uint8Array(outLength);
    return syncCall(
      name,
      () => filled(output, NATIVE[name].call(pkcs11, handle, nonNull(input), output)),
    );
  };
}

/** Every crypto call on the calling thread: no hand-off, but it blocks while it runs. */
export const syncEngine: CryptoEngine = {
  name: "sync",
  encrypt: syncBytes("encrypt"),
  decrypt: syncBytes("decrypt"),
  sign: syncBytes("sign"),
  verify(session, mechanism, key, input, signature) {
    const { pkcs11 } = session.module;
    const handle = session.handle;
    init(pkcs11, "C_VerifyInit", handle, mechanism, key);
    try {
      return Promise.resolve(
        NATIVE.C_Verify.call(pkcs11, handle, nonNull(input), nonNull(signature)),
      );
    } catch (error) {
      const wrapped = toHsmError(error, "C_Verify");
      return isBadSignature(wrapped.code) ? Promise.resolve(false) : Promise.reject(wrapped);
    }
  },
  digest(session, mechanism, input, outLength) {
    const { pkcs11 } = session.module;
    const handle = session.handle;
    return syncCall("C_Digest", () => {
      NATIVE.C_DigestInit.call(pkcs11, handle, mechanism);
      const output = new Uint8Array(outLength);
      return filled(output, NATIVE.C_Digest.call(pkcs11, handle, nonNull(input), output));
    });
  },
};

/**
 * The two engines that call the module from this thread's binding:
 * {@link asyncEngine} runs each call on libuv's thread pool through
 * pkcs11js's `*Async` variants (the event loop stays free, but each call
 * costs 60-80 µs of hand-off), {@link syncEngine} calls the module right
 * here (fastest per call, but blocks the event loop for its duration).
 *
 * @module
 */
import type { Buffer } from "node:buffer";
import type pkcs11js from "pkcs11js";
import { toHsmError } from "./errors.ts";
import {
  asBuffer,
  asBytes,
  type BytesCall,
  type CryptoEngine,
  init,
  isBadSignature,
  SessionActivity,
} from "./engine.ts";
import type { SessionHandle } from "./handle.ts";

/** The `*Init` function and the call of each bytes-out operation. */
const STEPS = {
  encrypt: ["C_EncryptInit", "C_Encrypt"],
  decrypt: ["C_DecryptInit", "C_Decrypt"],
  sign: ["C_SignInit", "C_Sign"],
} as const;

/**
 * pkcs11js's async calls keep raw pointers to their input and output
 * buffers without holding a reference to them: a buffer collected while the
 * call runs on another thread is memory corruption. Every buffer of an
 * in-flight call stays in this set until the call completes; and the
 * session is counted as busy, so it is not closed under the call.
 */
const inFlight = new Set<unknown>();
const activity = new SessionActivity();

/** Keeps `buffers` and the session busy until `call` settles; errors become HsmErrors. */
function held<T>(
  session: SessionHandle,
  buffers: unknown[],
  call: Promise<T>,
  operation: string,
): Promise<T> {
  inFlight.add(buffers);
  activity.begin(session);
  const done = () => {
    inFlight.delete(buffers);
    activity.end(session);
  };
  return call.then((value) => (done(), value), (error) => {
    done();
    throw toHsmError(error, operation);
  });
}

function asyncBytes(step: keyof typeof STEPS): BytesCall {
  const [initName, name] = STEPS[step];
  const asyncName = `${name}Async` as const;
  return (session, mechanism, key, input, outLength, out) => {
    const { pkcs11 } = session.module;
    const handle = session.handle;
    init(pkcs11, initName, handle, mechanism, key);
    const inBuf = asBuffer(input);
    const outBuf = out ?? new Uint8Array(outLength);
    const call = pkcs11[asyncName](handle, inBuf, asBuffer(outBuf));
    // The result is a view of outBuf of the length the module wrote.
    return held(session, [inBuf, outBuf, mechanism], call.then(asBytes), name);
  };
}

/** Every crypto call off the event loop, on pkcs11js's worker threads. */
export const asyncEngine: CryptoEngine = {
  name: "async",
  encrypt: asyncBytes("encrypt"),
  decrypt: asyncBytes("decrypt"),
  sign: asyncBytes("sign"),
  async verify(session, mechanism, key, input, signature) {
    const { pkcs11 } = session.module;
    const handle = session.handle;
    init(pkcs11, "C_VerifyInit", handle, mechanism, key);
    const inBuf = asBuffer(input);
    const sigBuf = asBuffer(signature);
    const call = pkcs11.C_VerifyAsync(handle, inBuf, sigBuf);
    try {
      return await held(session, [inBuf, sigBuf, mechanism], call, "C_Verify");
    } catch (error) {
      if (isBadSignature(toHsmError(error, "C_Verify").code)) return false;
      throw error;
    }
  },
  digest(session, mechanism, input, outLength) {
    const { pkcs11 } = session.module;
    const handle = session.handle;
    try {
      pkcs11.C_DigestInit(handle, mechanism);
    } catch (error) {
      throw toHsmError(error, "C_DigestInit");
    }
    const inBuf = asBuffer(input);
    const outBuf = new Uint8Array(outLength);
    const call = pkcs11.C_DigestAsync(handle, inBuf, asBuffer(outBuf));
    return held(session, [inBuf, outBuf, mechanism], call.then(asBytes), "C_Digest");
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

function outBuffer(outLength: number, out?: Uint8Array): Buffer {
  return asBuffer(out ?? new Uint8Array(outLength));
}

function syncBytes(step: keyof typeof STEPS): BytesCall {
  const [initName, name] = STEPS[step];
  return (session, mechanism, key, input, outLength, out) => {
    const pkcs11: pkcs11js.PKCS11 = session.module.pkcs11;
    const handle = session.handle;
    init(pkcs11, initName, handle, mechanism, key);
    const output = outBuffer(outLength, out);
    return syncCall(name, () => asBytes(pkcs11[name](handle, asBuffer(input), output)));
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
      return Promise.resolve(pkcs11.C_Verify(handle, asBuffer(input), asBuffer(signature)));
    } catch (error) {
      const wrapped = toHsmError(error, "C_Verify");
      return isBadSignature(wrapped.code) ? Promise.resolve(false) : Promise.reject(wrapped);
    }
  },
  digest(session, mechanism, input, outLength) {
    const { pkcs11 } = session.module;
    const handle = session.handle;
    return syncCall("C_Digest", () => {
      pkcs11.C_DigestInit(handle, mechanism);
      return asBytes(pkcs11.C_Digest(handle, asBuffer(input), outBuffer(outLength)));
    });
  },
};

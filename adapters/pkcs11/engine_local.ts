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
import { toHsmError } from "./errors.ts";
import { asBuffer, asBytes, type CryptoEngine, init, isBadSignature } from "./engine.ts";

/**
 * pkcs11js's async calls keep raw pointers to their input and output
 * buffers without holding a reference to them: a buffer collected while the
 * call runs on another thread is memory corruption. Every buffer of an
 * in-flight call stays in this set until the call completes.
 */
const inFlight = new Set<unknown>();

async function held<T>(buffers: unknown[], call: Promise<T>, operation: string): Promise<T> {
  inFlight.add(buffers);
  try {
    return await call;
  } catch (error) {
    throw toHsmError(error, operation);
  } finally {
    inFlight.delete(buffers);
  }
}

/** Every crypto call off the event loop, on pkcs11js's worker threads. */
export const asyncEngine: CryptoEngine = {
  name: "async",
  encrypt(session, mechanism, key, input, outLength) {
    const { pkcs11 } = session.module;
    const handle = session.handle;
    init(pkcs11, "C_EncryptInit", handle, mechanism, key);
    const inBuf = asBuffer(input);
    const outBuf = new Uint8Array(outLength);
    const call = pkcs11.C_EncryptAsync(handle, inBuf, asBuffer(outBuf));
    return held([inBuf, outBuf, mechanism], call, "C_Encrypt").then(asBytes);
  },
  decrypt(session, mechanism, key, input, outLength) {
    const { pkcs11 } = session.module;
    const handle = session.handle;
    init(pkcs11, "C_DecryptInit", handle, mechanism, key);
    const inBuf = asBuffer(input);
    const outBuf = new Uint8Array(outLength);
    const call = pkcs11.C_DecryptAsync(handle, inBuf, asBuffer(outBuf));
    return held([inBuf, outBuf, mechanism], call, "C_Decrypt").then(asBytes);
  },
  sign(session, mechanism, key, input, outLength) {
    const { pkcs11 } = session.module;
    const handle = session.handle;
    init(pkcs11, "C_SignInit", handle, mechanism, key);
    const inBuf = asBuffer(input);
    const outBuf = new Uint8Array(outLength);
    const call = pkcs11.C_SignAsync(handle, inBuf, asBuffer(outBuf));
    return held([inBuf, outBuf, mechanism], call, "C_Sign").then(asBytes);
  },
  async verify(session, mechanism, key, input, signature) {
    const { pkcs11 } = session.module;
    const handle = session.handle;
    init(pkcs11, "C_VerifyInit", handle, mechanism, key);
    const inBuf = asBuffer(input);
    const sigBuf = asBuffer(signature);
    try {
      return await held(
        [inBuf, sigBuf, mechanism],
        pkcs11.C_VerifyAsync(handle, inBuf, sigBuf),
        "C_Verify",
      );
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
    return held([inBuf, outBuf, mechanism], call, "C_Digest").then(asBytes);
  },
};

function syncCall<T>(operation: string, fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (error) {
    return Promise.reject(toHsmError(error, operation));
  }
}

function out(outLength: number): Buffer {
  return asBuffer(new Uint8Array(outLength));
}

/** Every crypto call on the calling thread: no hand-off, but it blocks while it runs. */
export const syncEngine: CryptoEngine = {
  name: "sync",
  encrypt(session, mechanism, key, input, outLength) {
    const { pkcs11 } = session.module;
    const handle = session.handle;
    init(pkcs11, "C_EncryptInit", handle, mechanism, key);
    return syncCall(
      "C_Encrypt",
      () => asBytes(pkcs11.C_Encrypt(handle, asBuffer(input), out(outLength))),
    );
  },
  decrypt(session, mechanism, key, input, outLength) {
    const { pkcs11 } = session.module;
    const handle = session.handle;
    init(pkcs11, "C_DecryptInit", handle, mechanism, key);
    return syncCall(
      "C_Decrypt",
      () => asBytes(pkcs11.C_Decrypt(handle, asBuffer(input), out(outLength))),
    );
  },
  sign(session, mechanism, key, input, outLength) {
    const { pkcs11 } = session.module;
    const handle = session.handle;
    init(pkcs11, "C_SignInit", handle, mechanism, key);
    return syncCall(
      "C_Sign",
      () => asBytes(pkcs11.C_Sign(handle, asBuffer(input), out(outLength))),
    );
  },
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
      return asBytes(pkcs11.C_Digest(handle, asBuffer(input), out(outLength)));
    });
  },
};

/** The engines by name, for options and flags. */
export const localEngines: Record<string, CryptoEngine> = { async: asyncEngine, sync: syncEngine };

/**
 * The worker side of `dispatch.ts`: a Deno Worker with its own pkcs11js
 * binding to the already initialised module. It runs each batch of jobs
 * back to back with the synchronous calls (`dispatch_run.ts`) and answers
 * with one message.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import pkcs11js from "pkcs11js";
import { runBatch } from "./dispatch_run.ts";
import type { JobBatch } from "./dispatch_wire.ts";

let pkcs11: pkcs11js.PKCS11 | undefined;

self.onmessage = (event: MessageEvent) => {
  if (pkcs11 === undefined) {
    pkcs11 = new pkcs11js.PKCS11();
    pkcs11.load(event.data.library);
    try {
      // The main thread initialised the module; this only attaches to it.
      pkcs11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
    } catch {
      // CKR_CRYPTOKI_ALREADY_INITIALIZED: attached, as expected.
      self.postMessage({ ready: true });
      return;
    }
    // Our C_Initialize succeeded: the module was not (or no longer)
    // initialised by the main thread. Never own it from here.
    pkcs11.C_Finalize();
    self.postMessage({ ready: false });
    return;
  }
  const answer = runBatch(pkcs11, event.data as JobBatch);
  self.postMessage(answer, [answer.results.buffer, answer.bytes.buffer]);
};

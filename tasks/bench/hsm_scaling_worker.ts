/**
 * A Worker of `hsm_scaling.ts`: runs the raw synchronous loop it is sent
 * on a binding and session of its own, and posts the result back.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { type LoopSpec, runLoop } from "./hsm_scaling.ts";

self.onmessage = async (e: MessageEvent<LoopSpec>) => {
  self.postMessage(await runLoop(e.data));
};

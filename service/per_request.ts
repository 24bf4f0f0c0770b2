/**
 * `POST /encrypt-per-request`: the same work as `/encrypt`, done the way
 * code without a session pool does it: every request loads and initialises
 * the module, finds the token, opens a session, logs in, encrypts, logs
 * out, closes the session and finalises the module (`withPerRequestSession`,
 * the benchmark's per-request peer). Compare the two routes with a load
 * tool to see what pooling buys.
 *
 * While the pooled side holds the module and the login in this process,
 * initialisation and login are already done and are left alone (PKCS#11
 * state is process-wide), and the adapter runs per-request calls one at a
 * time, as such code has to.
 *
 * Off unless `--per-request` (or `ENABLE_PER_REQUEST=1`) turns it on.
 *
 * @module
 */

import { withPerRequestSession } from "../tasks/bench/hsm_per_request.ts";
import type { ServiceConfig } from "./config.ts";
import { encodeBase64 } from "./request_body.ts";
import {
  type EncryptResult,
  parseEncryptRequest,
  tokenUnreadable,
  unknownLabel,
} from "./secrets.ts";
import { pingToken } from "./token_check.ts";

/** Encrypts with a session (and module lifecycle) made for this request only. */
export function encryptPerRequest(
  config: ServiceConfig,
  body: Record<string, unknown>,
  signal: AbortSignal,
): Promise<EncryptResult> {
  const { label, plaintext } = parseEncryptRequest(body);
  signal.throwIfAborted();
  return withPerRequestSession(
    {
      library: config.tokens[0].module ?? config.module,
      tokenLabel: config.tokens[0].label,
      pin: config.pin,
    },
    async (session) => {
      signal.throwIfAborted(); // the client left while this request was queued
      const key = session.findRandomKey(label, "aes");
      if (key === undefined) {
        try {
          pingToken(session); // 404 only when the token answers
        } catch (error) {
          throw tokenUnreadable(error);
        }
        throw unknownLabel(label);
      }
      const sealed = await session.encrypt(key, plaintext);
      return { ciphertext: encodeBase64(sealed), key_id: key.id };
    },
  );
}

/**
 * Recognises a token that refused the PIN. Retrying cannot fix that, and
 * every wrong `C_Login` counts towards the token locking the PIN, so the
 * service never logs in again by itself (the pool's breaker stays open on
 * such errors): the operator fixes `PKCS11_PIN` and restarts the service.
 *
 * @module
 */

import { errorText } from "./log.ts";

/** CKR names that mean "this PIN will not work", however often it is tried. */
const PIN_REFUSED =
  /CKR_(?:PIN_INCORRECT|PIN_LOCKED|PIN_EXPIRED|PIN_INVALID|PIN_LEN_RANGE|USER_PIN_NOT_INITIALIZED)\b/;

/** The CKR name when `error` (or one of its causes) is the token refusing the PIN. */
export function pinRefusal(error: unknown): string | undefined {
  return PIN_REFUSED.exec(errorText(error))?.[0];
}

/** What an operator reads in `/healthz` and the log when the PIN was refused. */
export function pinRefusalAdvice(ckr: string): string {
  return `the token refused the PIN (${ckr}): fix PKCS11_PIN and restart the service; it does ` +
    "not log in again by itself, so a wrong PIN cannot lock the token";
}

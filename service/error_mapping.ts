/**
 * Maps whatever a handler threw to an {@link HttpError}: pool exhaustion and
 * an open breaker become 503 with `Retry-After`, a ciphertext that does not
 * authenticate becomes 400, a client that went away gets 499 (nobody reads
 * it), and anything unexpected a generic 500 whose details go to the log only.
 *
 * @module
 */

import {
  CircuitOpenError,
  PoolClosedError,
  PoolOverloadedError,
  PoolTimeoutError,
} from "../mod.ts";
import { HsmError, NoMemberUpError, PinMismatchError } from "../adapters/pkcs11/mod.ts";
import { HttpError } from "./http_error.ts";
import { errorText } from "./log.ts";
import { pinRefusal } from "./pin_refusal.ts";

/** CKR names that mean the ciphertext (not the service) is wrong. */
const BAD_CIPHERTEXT = new Set([
  "CKR_ENCRYPTED_DATA_INVALID",
  "CKR_ENCRYPTED_DATA_LEN_RANGE",
]);

/** CKR names that mean the token or module is gone right now. */
const HSM_GONE = new Set([
  "CKR_DEVICE_REMOVED",
  "CKR_TOKEN_NOT_PRESENT",
  "CKR_DEVICE_ERROR",
  "CKR_TOKEN_NOT_RECOGNIZED",
  "CKR_CRYPTOKI_NOT_INITIALIZED",
  "CKR_GENERAL_ERROR",
]);

/**
 * Seconds to put in `Retry-After`, at least 1; for `Infinity` (no retry will help before an
 * operator acts) none here, and the response's one-second default applies.
 */
function retryAfter(ms: number): Record<string, string> {
  if (!Number.isFinite(ms)) return {};
  return { "retry-after": String(Math.max(1, Math.ceil(ms / 1000))) };
}

/**
 * The HTTP error for a thrown value. `signal` is the request's: when it is
 * aborted, the client is gone and the answer is a 499 nobody reads.
 */
export function toHttpError(error: unknown, signal?: AbortSignal): HttpError {
  if (error instanceof HttpError) return error;
  if (signal?.aborted && (error === signal.reason || signal.reason === undefined)) {
    return new HttpError(499, "client_closed_request", "the client closed the request");
  }
  if (error instanceof PoolTimeoutError) {
    return new HttpError(
      503,
      "pool_exhausted",
      `no HSM session became free within ${Math.round(error.waitedMs)} ms; retry later` +
        (error.cause ? ` (last session error: ${errorText(error.cause)})` : ""),
      retryAfter(1000),
    );
  }
  if (error instanceof PoolOverloadedError) {
    return new HttpError(
      503,
      "pool_overloaded",
      `${error.waiting} requests are already waiting for an HSM session; retry later`,
      retryAfter(1000),
    );
  }
  // A refused PIN (from the breaker, or from the handle that remembers it) or a PIN that is not
  // the one the token was logged in with: no retry helps before the operator acts.
  const pin = error instanceof PinMismatchError
    ? "a PIN other than the token's"
    : pinRefusal(error);
  if (pin !== undefined) {
    return new HttpError(
      503,
      "hsm_unavailable",
      `the HSM is unavailable: the token refused the service's PIN (${pin}) and the ` +
        "service waits for its operator",
    );
  }
  if (error instanceof CircuitOpenError) {
    return new HttpError(
      503,
      "hsm_unavailable",
      `the HSM is unavailable (circuit breaker open): ${errorText(error.cause)}`,
      retryAfter(error.retryAfterMs),
    );
  }
  if (error instanceof NoMemberUpError) {
    // Every member of the group is out; probes bring them back as soon as they answer.
    return new HttpError(503, "hsm_unavailable", error.message, retryAfter(1000));
  }
  if (error instanceof PoolClosedError) {
    return new HttpError(503, "shutting_down", "the service is shutting down", retryAfter(1000));
  }
  if (error instanceof HsmError && error.ckr !== undefined) {
    if (BAD_CIPHERTEXT.has(error.ckr)) {
      return new HttpError(
        400,
        "decryption_failed",
        "the ciphertext does not decrypt with this key: it was altered, truncated, or made " +
          "with another key_id",
      );
    }
    if (HSM_GONE.has(error.ckr)) {
      return new HttpError(
        503,
        "hsm_unavailable",
        `the HSM failed: ${error.message}`,
        retryAfter(1000),
      );
    }
  }
  return new HttpError(500, "internal_error", "internal error; the details are in the log");
}

/**
 * Graceful drain of requests in flight. `Deno.serve`'s own `shutdown()`
 * cuts off requests whose bodies are still arriving ("Cannot read request
 * body as underlying resource unavailable"), so the service drains first:
 * once the gate closes, new requests get 503 `shutting_down` with
 * `Connection: close`, and {@link RequestGate.close} resolves when every
 * request that was already in flight has been answered. Only then does the
 * server shut down.
 *
 * @module
 */

import { errorResponse, HttpError } from "./http_error.ts";
import type { Handler } from "./router.ts";

/** Counts requests in flight and refuses new ones once closed. */
export class RequestGate {
  #inFlight = 0;
  #closed = false;
  #drained: (() => void) | undefined;

  /** Requests being handled now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Wraps a handler: counted while open, refused with 503 once closed. */
  wrap(handler: Handler): Handler {
    return async (request, info) => {
      if (this.#closed) {
        return errorResponse(
          new HttpError(503, "shutting_down", "the service is shutting down; retry elsewhere", {
            "retry-after": "1",
            connection: "close",
          }),
        );
      }
      this.#inFlight++;
      try {
        return await handler(request, info);
      } finally {
        if (--this.#inFlight === 0) this.#drained?.();
      }
    };
  }

  /**
   * Refuses new requests from now on and resolves once the ones in flight
   * are answered, or after `timeoutMs` (whichever comes first).
   */
  close(timeoutMs: number): Promise<void> {
    this.#closed = true;
    if (this.#inFlight === 0) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    const timer = setTimeout(resolve, timeoutMs);
    this.#drained = () => {
      clearTimeout(timer);
      resolve();
    };
    return promise;
  }
}

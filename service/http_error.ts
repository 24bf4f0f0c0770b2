/**
 * HTTP errors of the service and the one place that turns any thrown value
 * into a JSON error response: a status, a stable machine-readable `error`
 * code and a message for people. Never a stack trace, never a secret.
 *
 * @module
 */

/** An error that already knows its HTTP status and response code. */
export class HttpError extends Error {
  /** HTTP status, e.g. 400. */
  readonly status: number;
  /** Stable machine-readable code, e.g. `"invalid_base64"`. */
  readonly code: string;
  /** Extra response headers (`Allow`, `Retry-After`). */
  readonly headers: Record<string, string>;

  /**
   * Makes the error.
   *
   * @param status HTTP status.
   * @param code Machine-readable code.
   * @param message What was wrong and how to fix it.
   * @param headers Extra response headers.
   */
  constructor(status: number, code: string, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.name = "HttpError";
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

/** `Retry-After` of a 503 whose cause names no better time, in seconds. */
const DEFAULT_RETRY_AFTER_SECONDS = "1";

/**
 * A JSON response with `content-type: application/json`. Every 503 carries `Retry-After`
 * (`headers`' own, else one second), so a client always knows when to
 * come back, whichever failure it met first.
 */
export function jsonResponse(
  body: unknown,
  status = 200,
  headers: Record<string, string> = {},
): Response {
  const retry: Record<string, string> = status === 503 &&
      !Object.keys(headers).some((h) => h.toLowerCase() === "retry-after")
    ? { "retry-after": DEFAULT_RETRY_AFTER_SECONDS }
    : {};
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...retry, ...headers },
  });
}

/** The JSON error response for an {@link HttpError}. */
export function errorResponse(error: HttpError): Response {
  return jsonResponse({ error: error.code, message: error.message }, error.status, error.headers);
}

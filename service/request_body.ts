/**
 * Reading and checking request bodies: a byte limit enforced while the body
 * streams in (413 before the whole of an oversized body is read), a time
 * limit for the whole body (408 for a client that trickles it), strict JSON,
 * required string fields, and standard base64.
 *
 * @module
 */

import { HttpError } from "./http_error.ts";

/** How much body a request may send, and how slowly. */
export interface BodyLimits {
  /** Largest body in bytes (413 above). */
  maxBytes: number;
  /** Time for the whole body to arrive, from the first read (408 after). */
  timeoutMs: number;
}

/**
 * Reads the body as JSON, within `limits`.
 *
 * @throws {HttpError} 413 when the body is too large, 408 when it arrives too
 * slowly, 415 for a non-JSON content type, 400 when it is not a JSON object
 * or ends before its `Content-Length`.
 */
export async function readJsonObject(
  request: Request,
  limits: BodyLimits,
): Promise<Record<string, unknown>> {
  const type = request.headers.get("content-type");
  if (type !== null && !/^application\/json\s*(;|$)/i.test(type)) {
    throw new HttpError(
      415,
      "unsupported_media_type",
      `content-type must be application/json, got ${JSON.stringify(type)}`,
    );
  }
  const bytes = await readLimited(request, limits);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (error) {
    throw new HttpError(
      400,
      "malformed_json",
      `the body is not valid JSON (${(error as Error).message}); send a JSON object`,
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new HttpError(400, "malformed_json", "the body must be a JSON object");
  }
  return value as Record<string, unknown>;
}

async function readLimited(request: Request, limits: BodyLimits): Promise<Uint8Array> {
  const { maxBytes, timeoutMs } = limits;
  const tooLarge = () =>
    new HttpError(
      413,
      "body_too_large",
      `the body is larger than the limit of ${maxBytes} bytes; send less data per request`,
      { connection: "close" },
    );
  const declared = Number(request.headers.get("content-length") ?? NaN);
  if (declared > maxBytes) throw tooLarge();
  if (request.body === null) return new Uint8Array(0);
  const reader = request.body.getReader();
  // Each read races the deadline; a read left pending is dropped by
  // releaseLock(). (Cancelling the body instead makes Deno.serve's
  // shutdown() wait for the client to hang up.)
  const { promise: expired, resolve: expire } = Promise.withResolvers<"expired">();
  const deadline = setTimeout(() => expire("expired"), timeoutMs);
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    while (true) {
      const chunk = await Promise.race([readChunk(reader, request, total), expired]);
      if (chunk === "expired") {
        throw new HttpError(
          408,
          "body_timeout",
          `the body took longer than ${timeoutMs} ms to arrive (${total} bytes came); ` +
            "send it at once",
          { connection: "close" },
        );
      }
      if (chunk.done) break;
      total += chunk.value.byteLength;
      if (total > maxBytes) throw tooLarge();
      chunks.push(chunk.value);
    }
  } finally {
    clearTimeout(deadline);
    reader.releaseLock();
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}

/**
 * One chunk of the body. The body can only fail to arrive because of the
 * client: when it is gone (the request's signal is aborted) the signal's
 * reason is thrown (the 499 path), else a 400 `incomplete_body` that a
 * client which half-closed after sending less than it announced can read.
 */
async function readChunk(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  request: Request,
  received: number,
): Promise<ReadableStreamReadResult<Uint8Array>> {
  try {
    return await reader.read();
  } catch {
    request.signal.throwIfAborted();
    const declared = request.headers.get("content-length");
    throw new HttpError(
      400,
      "incomplete_body",
      `the body ended after ${received} bytes` +
        (declared === null ? "" : ` of the ${declared} its Content-Length announced`) +
        "; send the whole body",
      { connection: "close" },
    );
  }
}

/**
 * Checks that `body` has exactly the `required` string fields (plus any
 * `optional` ones) and nothing else.
 *
 * @throws {HttpError} 400 `missing_field`, `invalid_field` or `unknown_field`.
 */
export function stringFields<K extends string, O extends string = never>(
  body: Record<string, unknown>,
  required: readonly K[],
  optional: readonly O[] = [],
): Record<K, string> & Partial<Record<O, string>> {
  const allowed = new Set<string>([...required, ...optional]);
  for (const key of Object.keys(body)) {
    if (!allowed.has(key)) {
      throw new HttpError(
        400,
        "unknown_field",
        `unknown field ${JSON.stringify(key.slice(0, 64))}; expected ${
          [...allowed].map((k) => `"${k}"`).join(", ")
        }`,
      );
    }
  }
  for (const key of required) {
    if (!(key in body)) {
      throw new HttpError(400, "missing_field", `field "${key}" is required`);
    }
  }
  for (const [key, value] of Object.entries(body)) {
    if (typeof value !== "string") {
      throw new HttpError(
        400,
        "invalid_field",
        `field "${key}" must be a string, got ${value === null ? "null" : typeof value}`,
      );
    }
  }
  return body as Record<K, string> & Partial<Record<O, string>>;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/;

/**
 * Decodes standard base64 (RFC 4648 alphabet `+/`, padding optional, no
 * whitespace).
 *
 * @throws {HttpError} 400 `invalid_base64` naming the field.
 */
export function decodeBase64Field(field: string, value: string): Uint8Array {
  if (!BASE64.test(value)) {
    throw new HttpError(
      400,
      "invalid_base64",
      `field "${field}" is not standard base64 (alphabet A-Z a-z 0-9 + /, optional = padding)`,
    );
  }
  try {
    return Uint8Array.fromBase64(value, { lastChunkHandling: "loose" });
  } catch {
    throw new HttpError(400, "invalid_base64", `field "${field}" is not valid base64`);
  }
}

/** Encodes bytes as standard padded base64. */
export function encodeBase64(bytes: Uint8Array): string {
  return bytes.toBase64();
}

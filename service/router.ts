/**
 * A tiny exact-path router: a table of path → method → handler. Unknown
 * paths get 404, known paths with another method 405 with `Allow`, `HEAD`
 * works wherever `GET` does (the GET response, whose body `Deno.serve`
 * leaves out while keeping its `Content-Length`), and every thrown value becomes a JSON error
 * response through one mapper (no stack traces reach a client).
 *
 * @module
 */

import { errorResponse, HttpError } from "./http_error.ts";

/** Answers one request; `info` is what `Deno.serve` tells about its connection. */
export type Handler = (
  request: Request,
  info?: Deno.ServeHandlerInfo,
) => Response | Promise<Response>;

/** Path → HTTP method → handler. */
export type RouteTable = Record<string, Partial<Record<string, Handler>>>;

/** Turns a thrown value into an {@link HttpError} (and logs what needs logging). */
export type ErrorMapper = (error: unknown, request: Request) => HttpError;

/** Builds the request handler for `Deno.serve` from a route table. */
export function createRouter(routes: RouteTable, mapError: ErrorMapper): Handler {
  const paths = Object.keys(routes).sort().join(", ");
  return async (request) => {
    const path = new URL(request.url).pathname;
    const methods = Object.hasOwn(routes, path) ? routes[path] : undefined;
    if (methods === undefined) {
      return errorResponse(
        new HttpError(404, "not_found", `no endpoint ${path}; the endpoints are ${paths}`),
      );
    }
    const head = request.method === "HEAD" && methods.GET !== undefined;
    const handler = head ? methods.GET : methods[request.method];
    if (handler === undefined) {
      const allow = Object.keys(methods).concat(methods.GET ? ["HEAD"] : []).join(", ");
      return errorResponse(
        new HttpError(
          405,
          "method_not_allowed",
          `${request.method} is not allowed on ${path}; use ${allow}`,
          { allow },
        ),
      );
    }
    try {
      return await handler(request);
    } catch (error) {
      return errorResponse(mapError(error, request));
    }
  };
}

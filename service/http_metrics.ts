/**
 * The service's own HTTP metrics: requests in flight and requests answered
 * by route, method and status, in Prometheus text. No label takes a value a
 * client chooses freely: paths outside the route table and methods outside
 * the standard ones are counted as `other`, so a scanner cannot grow the
 * series count (and the service's memory and every scrape) without bound.
 *
 * @module
 */

import type { Handler } from "./router.ts";

/** The status counted for a request whose client left before its answer (nginx's code). */
export const CLIENT_CLOSED_REQUEST = 499;

/** The methods counted under their own name (RFC 9110 plus PATCH); any other is `other`. */
const KNOWN_METHODS: ReadonlySet<string> = new Set([
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "DELETE",
  "PATCH",
  "OPTIONS",
  "CONNECT",
  "TRACE",
]);

/** Counts requests around a handler and renders them as Prometheus text. */
export class HttpMetrics {
  #inFlight = 0;
  #answered = new Map<string, number>();
  #known: ReadonlySet<string>;

  /** Counts requests to `knownPaths` by path; other paths are labelled `other`. */
  constructor(knownPaths: Iterable<string>) {
    this.#known = new Set(knownPaths);
  }

  /** Requests being handled right now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Wraps a handler so every request is counted, once its answer has left
   * (`info.completed`): an answer that could not be delivered, because the
   * client was gone, counts as `499` (nginx's "client closed request"), never
   * as a server error.
   */
  wrap(handler: Handler): Handler {
    return async (request, info) => {
      this.#inFlight++;
      let status = 500;
      try {
        const response = await handler(request, info);
        status = response.status;
        return response;
      } finally {
        this.#inFlight--;
        const labels = this.#labels(request);
        if (info === undefined) this.#count(labels, status);
        else {
          info.completed.then(
            () => this.#count(labels, status),
            () => this.#count(labels, CLIENT_CLOSED_REQUEST),
          );
        }
      }
    };
  }

  #labels(request: Request): [string, string] {
    const path = new URL(request.url).pathname;
    return [
      this.#known.has(path) ? path : "other",
      KNOWN_METHODS.has(request.method) ? request.method : "other",
    ];
  }

  #count([path, method]: [string, string], status: number): void {
    const key = JSON.stringify([path, method, String(status)]);
    this.#answered.set(key, (this.#answered.get(key) ?? 0) + 1);
  }

  /** The metrics as Prometheus text exposition 0.0.4 (ends with a newline). */
  format(prefix = "secret_manager"): string {
    const lines = [
      `# HELP ${prefix}_http_requests_in_flight HTTP requests being handled.`,
      `# TYPE ${prefix}_http_requests_in_flight gauge`,
      `${prefix}_http_requests_in_flight ${this.#inFlight}`,
      `# HELP ${prefix}_http_requests_total HTTP requests answered, by path, method and status.`,
      `# TYPE ${prefix}_http_requests_total counter`,
    ];
    for (const [key, count] of [...this.#answered].sort()) {
      const [path, method, code] = JSON.parse(key) as string[];
      lines.push(
        `${prefix}_http_requests_total{path="${label(path)}",method="${
          label(method)
        }",code="${code}"} ${count}`,
      );
    }
    return lines.join("\n") + "\n";
  }
}

function label(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

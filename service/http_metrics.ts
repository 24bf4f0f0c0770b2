/**
 * The service's own HTTP metrics: requests in flight and requests answered
 * by route, method and status, in Prometheus text. Paths outside the route
 * table are counted as `other`, so a scanner cannot blow up the series count.
 *
 * @module
 */

import type { Handler } from "./router.ts";

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

  /** Wraps a handler so every request is counted. */
  wrap(handler: Handler): Handler {
    return async (request) => {
      this.#inFlight++;
      let status = 500;
      try {
        const response = await handler(request);
        status = response.status;
        return response;
      } finally {
        this.#inFlight--;
        const path = new URL(request.url).pathname;
        const key = JSON.stringify([
          this.#known.has(path) ? path : "other",
          request.method.length <= 10 ? request.method : "other",
          String(status),
        ]);
        this.#answered.set(key, (this.#answered.get(key) ?? 0) + 1);
      }
    };
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

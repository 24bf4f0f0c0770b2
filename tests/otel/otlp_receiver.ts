/**
 * A minimal OTLP/HTTP receiver for tests (JSON protocol): listens on
 * 127.0.0.1 on a free port, keeps every metrics export it is sent, accepts
 * and ignores logs and traces, and turns the metrics into flat points that a
 * test can look up by name and attributes. Point a Deno child at it with
 * {@link OtlpReceiver.env}.
 *
 * @module
 */

/** One data point of one metric, flattened from an OTLP/JSON export. */
export interface MetricPoint {
  /** Metric name, e.g. `db.client.connection.count`. */
  name: string;
  /** Its unit (UCUM), e.g. `s` or `{connection}`. */
  unit: string;
  /** Its description. */
  description: string;
  /** `sum` (counters, up-down counters), `gauge` or `histogram`. */
  kind: "sum" | "gauge" | "histogram";
  /** For sums: whether it is monotonic (a counter) or not (an up-down counter). */
  monotonic?: boolean;
  /** The instrumentation scope (meter) name. */
  scope: string;
  /** The point's attributes, as plain values. */
  attributes: Record<string, string | number | boolean>;
  /** Value of a sum or gauge. */
  value?: number;
  /** Histogram fields. */
  count?: number;
  /** Histogram sum. */
  sum?: number;
  /** Histogram min. */
  min?: number;
  /** Histogram max. */
  max?: number;
  /** Histogram bucket upper bounds. */
  bounds?: number[];
  /** Histogram counts per bucket (not cumulative; one more than `bounds`). */
  bucketCounts?: number[];
}

type AnyValue = {
  stringValue?: string;
  intValue?: string | number;
  doubleValue?: number;
  boolValue?: boolean;
};
type KeyValue = { key: string; value: AnyValue };
// deno-lint-ignore no-explicit-any
type Json = any;

/** The receiver; `await using` closes it. */
export class OtlpReceiver implements AsyncDisposable {
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #exports: Json[] = [];
  #changed = Promise.withResolvers<void>();

  private constructor() {
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      async (req) => {
        const path = new URL(req.url).pathname;
        const type = req.headers.get("content-type") ?? "";
        const body = await req.text();
        if (req.method !== "POST" || !type.startsWith("application/json")) {
          return new Response(`expected a POST of application/json, got ${req.method} ${type}`, {
            status: 415,
          });
        }
        if (path === "/v1/metrics") {
          this.#exports.push(JSON.parse(body));
          this.#changed.resolve();
          this.#changed = Promise.withResolvers<void>();
        }
        return Response.json({});
      },
    );
  }

  /** Starts a receiver on 127.0.0.1, on a free port. */
  static start(): OtlpReceiver {
    return new OtlpReceiver();
  }

  /** `http://127.0.0.1:PORT`: the value for `OTEL_EXPORTER_OTLP_ENDPOINT`. */
  get endpoint(): string {
    return `http://127.0.0.1:${this.#server.addr.port}`;
  }

  /**
   * The environment of a child that exports to this receiver with Deno's
   * built-in OpenTelemetry, over OTLP/HTTP JSON, every `intervalMs`.
   */
  env(intervalMs = 200): Record<string, string> {
    return {
      OTEL_DENO: "true",
      OTEL_EXPORTER_OTLP_ENDPOINT: this.endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_METRIC_EXPORT_INTERVAL: String(intervalMs),
      OTEL_SERVICE_NAME: "poolkit-otel-test",
    };
  }

  /** How many metrics exports arrived. */
  get exportCount(): number {
    return this.#exports.length;
  }

  /** The points of the latest export that carried `name` (cumulative temporality: the newest). */
  latest(name: string): MetricPoint[] {
    for (let i = this.#exports.length - 1; i >= 0; i--) {
      const points = flatten(this.#exports[i]).filter((p) => p.name === name);
      if (points.length > 0) return points;
    }
    return [];
  }

  /** Every metric name seen so far. */
  names(): Set<string> {
    return new Set(this.#exports.flatMap((e) => flatten(e).map((p) => p.name)));
  }

  /** Resolves once `ready()` holds after an export, or rejects after `timeoutMs`. */
  async waitFor(ready: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = AbortSignal.timeout(timeoutMs);
    const { promise: timedOut, reject } = Promise.withResolvers<never>();
    const onAbort = () =>
      reject(new Error(`OTLP receiver: no export with ${what} within ${timeoutMs} ms`));
    deadline.addEventListener("abort", onAbort, { once: true });
    try {
      while (!ready()) await Promise.race([this.#changed.promise, timedOut]);
    } finally {
      deadline.removeEventListener("abort", onAbort);
    }
  }

  /** Stops listening. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.#server.shutdown();
  }
}

function flatten(doc: Json): MetricPoint[] {
  const out: MetricPoint[] = [];
  for (const rm of doc.resourceMetrics ?? []) {
    for (const sm of rm.scopeMetrics ?? []) {
      for (const m of sm.metrics ?? []) {
        const base = { name: m.name, unit: m.unit ?? "", description: m.description ?? "" };
        const scope = sm.scope?.name ?? "";
        if (m.sum) {
          for (const dp of m.sum.dataPoints) {
            out.push({
              ...base,
              scope,
              kind: "sum",
              monotonic: m.sum.isMonotonic === true,
              attributes: attributes(dp.attributes),
              value: numberValue(dp),
            });
          }
        } else if (m.gauge) {
          for (const dp of m.gauge.dataPoints) {
            out.push({
              ...base,
              scope,
              kind: "gauge",
              attributes: attributes(dp.attributes),
              value: numberValue(dp),
            });
          }
        } else if (m.histogram) {
          for (const dp of m.histogram.dataPoints) {
            out.push({
              ...base,
              scope,
              kind: "histogram",
              attributes: attributes(dp.attributes),
              count: Number(dp.count),
              sum: dp.sum,
              min: dp.min,
              max: dp.max,
              bounds: dp.explicitBounds ?? [],
              bucketCounts: (dp.bucketCounts ?? []).map(Number),
            });
          }
        }
      }
    }
  }
  return out;
}

function numberValue(dp: { asDouble?: number; asInt?: string | number }): number {
  return dp.asDouble ?? Number(dp.asInt);
}

function attributes(list: KeyValue[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const { key, value } of list ?? []) {
    out[key] = value.stringValue ?? value.boolValue ?? value.doubleValue ??
      Number(value.intValue);
  }
  return out;
}

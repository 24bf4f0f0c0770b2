/**
 * The service's routes, wired to the HSM handle: the request handler that
 * `Deno.serve` runs. Every crypto request borrows a pooled session with the
 * request's `signal`, so a client that disconnects while waiting leaves the
 * queue and its session (if it got one) goes back to the pool.
 *
 * @module
 */

import { formatPrometheus, PROMETHEUS_CONTENT_TYPE } from "../pool/metrics.ts";
import type { AcquireOptions, PoolStats } from "../mod.ts";
import type { Hsm } from "../adapters/pkcs11/mod.ts";
import type { ServiceConfig } from "./config.ts";
import { toHttpError } from "./error_mapping.ts";
import { checkHealth } from "./health.ts";
import { HttpMetrics } from "./http_metrics.ts";
import { HttpError, jsonResponse } from "./http_error.ts";
import { errorText, type Logger } from "./log.ts";
import { encryptPerRequest } from "./per_request.ts";
import { formatMemberMetrics, memberJson } from "./hsm_members.ts";
import { poolStatsJson } from "./pool_stats.ts";
import { readJsonObject } from "./request_body.ts";
import { RequestGate } from "./request_gate.ts";
import { createRouter, type ErrorMapper, type Handler, type RouteTable } from "./router.ts";
import { decrypt, encrypt } from "./secrets.ts";

/** Anything with pool statistics, shown in `/pool/stats` and `/metrics`. */
export interface StatsSource {
  /** A snapshot of the pool. */
  stats(): PoolStats;
}

/** What the routes are built from. */
export interface AppOptions {
  /** The HSM session pool. */
  hsm: Hsm;
  /** The configuration (for limits, timeouts and the per-request route). */
  config: ServiceConfig;
  /** Where log lines go. */
  log: Logger;
  /** More pools to show in stats and metrics (the database pool). */
  extraPools?: StatsSource[];
}

/** The request handler plus its HTTP metrics. */
export interface App {
  /** The handler for `Deno.serve`. */
  handler: Handler;
  /** Request counters (also served on `/metrics`). */
  httpMetrics: HttpMetrics;
  /** Refuses new requests and resolves when those in flight are answered (or after `timeoutMs`). */
  drain(timeoutMs: number): Promise<void>;
}

/** How long `/healthz` waits for an idle session before calling the HSM unavailable. */
const HEALTH_TIMEOUT_MS = 2000;

/** `POST /encrypt-per-request`: the same work without the pool (see `per_request.ts`). */
function perRequestRoute({ hsm, config }: AppOptions): Handler {
  const limits = { maxBytes: config.maxBodyBytes, timeoutMs: config.bodyTimeoutMs };
  return async (request) => {
    // Same PIN as the pool: while its breaker is open (a refused PIN above
    // all), logging in per request would only add failed logins.
    if (hsm.stats().breaker === "open") {
      throw new HttpError(
        503,
        "hsm_unavailable",
        "the HSM is unavailable (the session pool's circuit breaker is open); see /healthz",
        { "retry-after": "1" },
      );
    }
    const body = await readJsonObject(request, limits);
    return jsonResponse(await encryptPerRequest(config, body, request.signal));
  };
}

/**
 * Maps a thrown value to its HTTP error and logs what an operator must see:
 * server faults at error, refusals (503) at warn, clients gone (499) at
 * debug only: they are the client's doing.
 */
function mapAndLog(log: Logger): ErrorMapper {
  return (error, request) => {
    const mapped = toHttpError(error, request.signal);
    const fields = {
      method: request.method.slice(0, 16),
      path: new URL(request.url).pathname.slice(0, 256),
      status: mapped.status,
      code: mapped.code,
    };
    if (mapped.status >= 500 && mapped.status !== 503) {
      log("error", "request failed", { ...fields, error: errorText(error) });
    } else if (mapped.status === 503) {
      log("warn", "request refused", { ...fields, reason: mapped.message });
    } else if (mapped.status === 499) {
      log("debug", "client closed the request", fields);
    }
    return mapped;
  };
}

/** Builds the request handler. */
export function createApp(options: AppOptions): App {
  const { hsm, config, log } = options;
  const extraPools = options.extraPools ?? [];
  // Stats show the handle (summed) with its members; metrics show each member's own pool.
  const hsmStatsJson = () => {
    const stats = hsm.stats();
    return { ...poolStatsJson(stats), members: stats.members.map(memberJson) };
  };
  const metricPools: StatsSource[] = [...hsm.members.map((m) => m.pool), ...extraPools];
  const bodyLimits = { maxBytes: config.maxBodyBytes, timeoutMs: config.bodyTimeoutMs };
  const acquire = (request: Request): AcquireOptions => ({
    signal: request.signal,
    timeoutMs: config.acquireTimeoutMs,
  });

  const encryptRoute: Handler = async (request) =>
    jsonResponse(
      await encrypt(hsm, await readJsonObject(request, bodyLimits), acquire(request)),
    );
  const routes: RouteTable = {
    "/encrypt": { POST: encryptRoute },
    // An alias of /encrypt, the name some clients use.
    "/encrypt-pool": { POST: encryptRoute },
    "/decrypt": {
      POST: async (request) =>
        jsonResponse(
          await decrypt(
            hsm,
            await readJsonObject(request, bodyLimits),
            acquire(request),
          ),
        ),
    },
    "/pool/stats": {
      GET: () =>
        jsonResponse({
          pools: [hsmStatsJson(), ...extraPools.map((p) => poolStatsJson(p.stats()))],
        }),
    },
    "/metrics": {
      GET: () =>
        new Response(
          formatPrometheus(metricPools) + formatMemberMetrics(hsm.stats().members) +
            httpMetrics.format(),
          { headers: { "content-type": PROMETHEUS_CONTENT_TYPE } },
        ),
    },
    "/healthz": {
      GET: async () => {
        const health = await checkHealth(hsm, HEALTH_TIMEOUT_MS);
        if (health.status !== "ok") {
          log("warn", `health check: ${health.status}`, { reason: health.reason });
        }
        return jsonResponse(health, health.status === "unavailable" ? 503 : 200);
      },
    },
  };
  if (config.perRequest) routes["/encrypt-per-request"] = { POST: perRequestRoute(options) };

  const httpMetrics = new HttpMetrics(Object.keys(routes));
  const router = createRouter(routes, mapAndLog(log));
  const gate = new RequestGate();
  return {
    handler: httpMetrics.wrap(gate.wrap(router)),
    httpMetrics,
    drain: (timeoutMs) => gate.close(timeoutMs),
  };
}

/**
 * Starts and stops the secret-manager service: opens the HSM session pool,
 * makes sure the configured key labels exist, serves HTTP, and shuts down
 * gracefully (stop accepting, finish what is in flight, close the pool).
 *
 * @example
 * ```ts ignore
 * import { loadConfig } from "./config.ts";
 * await using service = await startService({ config: loadConfig() });
 * console.log(service.url);
 * await service.finished;
 * ```
 *
 * @module
 */

import { type Hsm, openHsm } from "../adapters/pkcs11/mod.ts";
import { type App, createApp, type StatsSource } from "./app.ts";
import { describeConfig, type ServiceConfig } from "./config.ts";
import { openDatabasePool } from "./database_pool.ts";
import type { PostgresPool } from "../adapters/postgres/mod.ts";
import { errorText, jsonLogger, type Logger } from "./log.ts";
import { instrumentPool } from "../otel/mod.ts";

/** Options of {@link startService}. */
export interface StartOptions {
  /** The configuration (see `loadConfig`). */
  config: ServiceConfig;
  /** Where log lines go. Default JSON lines on stderr. */
  log?: Logger;
  /** More pools to show in `/pool/stats` and `/metrics`. */
  extraPools?: StatsSource[];
  /**
   * How long shutdown waits for requests in flight, then for connections,
   * then for sessions still lent out, before cutting them off. Default the
   * config's `drainTimeoutMs` (10 s) each.
   */
  closeTimeoutMs?: number;
}

/** A running service. */
export interface Service extends AsyncDisposable {
  /** Base URL, e.g. `http://127.0.0.1:8080`. */
  readonly url: string;
  /** The port it listens on (useful with port 0). */
  readonly port: number;
  /** The HSM session pool. */
  readonly hsm: Hsm;
  /** Graceful shutdown; idempotent. Resolves when the pool is closed. */
  shutdown(reason?: string): Promise<void>;
  /** Resolves once the service has shut down. */
  readonly finished: Promise<void>;
}

/**
 * Creates the AES key for every label that has none yet (token objects). A group's members must
 * hold clones of one key, which a key made on one member is not: there, nothing is created, and
 * `/pool/stats` shows the keys a member lacks.
 */
async function ensureKeys(hsm: Hsm, labels: readonly string[], log: Logger): Promise<void> {
  if (hsm.members.length > 1) {
    if (labels.length) {
      log("info", "several tokens: keys are not created; clone them onto every token", {
        key_labels: labels,
      });
    }
    return;
  }
  for (const label of labels) {
    const created = await hsm.use(async (session) => {
      if (session.findKeys(label, "aes").length > 0) return undefined;
      return await session.generateAesKey({ label });
    });
    if (created) log("info", "created AES-256 key", { key_label: label, key_id: created.id });
  }
}

/** Serves `app` on the configured address. */
function serve(app: App, config: ServiceConfig, log: Logger): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({
    hostname: config.host,
    port: config.port,
    // Deno.serve bounds nothing else of a connection (no header-read, idle
    // or connection-count limit): see docs/service.md, "Limits against slow and rude clients".
    tcpBacklog: config.tcpBacklog,
    onListen: () => {},
    onError: (error) => {
      log("error", "unhandled request error", { error: errorText(error) });
      return new Response('{"error":"internal_error"}', { status: 500 });
    },
  }, app.handler);
}

/** What a running service stops, in this order. */
interface RunningParts {
  app: App;
  server: Deno.HttpServer<Deno.NetAddr>;
  hsm: Hsm;
  database?: PostgresPool;
}

/**
 * Drains requests in flight, stops the server, closes the pools; each step
 * waits at most `timeoutMs`.
 */
async function stopInOrder(parts: RunningParts, timeoutMs: number, log: Logger): Promise<void> {
  try {
    await parts.app.drain(timeoutMs);
    // shutdown() can wait on a connection whose client is gone or stalled
    // (Deno.serve has no timeout of its own); the service does not wait
    // longer than timeoutMs for it, and `deno task serve` exits anyway.
    if (!await settlesWithin(parts.server.shutdown(), timeoutMs)) {
      log("warn", "connections still open after the drain; stopping without them", { timeoutMs });
    }
  } finally {
    await Promise.all([parts.hsm.close({ timeoutMs }), parts.database?.close({ timeoutMs })]);
  }
}

/** Whether `promise` settles within `ms` (a rejection counts as settled, and is thrown). */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), ms));
  try {
    return await Promise.race([promise.then(() => true), expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** Opens the HSM pool and starts serving; rejects (with the pool closed) when either fails. */
export async function startService(options: StartOptions): Promise<Service> {
  const { config } = options;
  const log = options.log ?? jsonLogger();
  const pool = {
    min: config.poolMin,
    max: config.poolMax,
    acquireTimeoutMs: config.acquireTimeoutMs,
    maxWaiting: config.maxWaiting,
    breaker: { threshold: config.breakerThreshold, cooldownMs: config.breakerCooldownMs },
  };
  const tokens = config.tokens.map(({ label, module }) => ({
    library: module ?? config.module,
    tokenLabel: label,
  }));
  const hsm = tokens.length === 1
    ? await openHsm({ ...tokens[0], pin: config.pin, pool })
    : await openHsm({ members: tokens, pin: config.pin, pool });
  let server: Deno.HttpServer<Deno.NetAddr>;
  let app: App;
  let database: PostgresPool | undefined;
  try {
    await ensureKeys(hsm, config.ensureKeys, log);
    if (config.databaseUrl) database = await openDatabasePool(config.databaseUrl, log);
    if (Deno.env.get("OTEL_DENO") === "true") {
      for (const { pool } of hsm.members) instrumentPool(pool);
      if (database) instrumentPool(database.pool);
    }
    const extraPools = [...(database ? [database] : []), ...(options.extraPools ?? [])];
    app = createApp({ hsm, config, log, extraPools });
    server = serve(app, config, log);
  } catch (error) {
    await database?.close();
    await hsm.close();
    throw error;
  }
  const { hostname, port } = server.addr;
  const url = `http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;
  log("info", "listening", { url, pid: Deno.pid, config: describeConfig(config) });

  const { promise: finished, resolve: done } = Promise.withResolvers<void>();
  let stopping: Promise<void> | undefined;
  const shutdown = (reason = "shutdown requested"): Promise<void> => {
    stopping ??= (async () => {
      log("info", "shutting down: finishing requests in flight", { reason });
      const timeoutMs = options.closeTimeoutMs ?? config.drainTimeoutMs;
      try {
        await stopInOrder({ app, server, hsm, database }, timeoutMs, log);
      } finally {
        log("info", "stopped", { reason });
        done();
      }
    })();
    return stopping;
  };
  return {
    url,
    port,
    hsm,
    shutdown,
    finished,
    [Symbol.asyncDispose]: () => shutdown("disposed"),
  };
}

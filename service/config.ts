/**
 * The secret-manager service's configuration: read from command-line flags,
 * then the environment, then defaults. The PIN and the database URL come
 * only from the environment (flags show up in `ps`), and {@link describeConfig}
 * never prints them.
 *
 * @module
 */

import { parseArgs } from "node:util";

/** One token the service uses: several make an HSM group (one handle, several members). */
export interface ServiceToken {
  /** Token label; also the member's name. */
  label: string;
  /** PKCS#11 module path for this token; undefined: the service's `module`. */
  module?: string;
}

/** Everything the service needs to start. */
export interface ServiceConfig {
  /** Interface to listen on. Flag `--host`, env `HOST`; default `127.0.0.1`. */
  host: string;
  /** Port to listen on; 0 picks a free one. Flag `--port`, env `PORT`; default 8080. */
  port: number;
  /** PKCS#11 module path; undefined lets the adapter search. Flag `--module`, env `PKCS11_MODULE`. */
  module?: string;
  /**
   * The tokens, one or more: flag `--token LABEL[@MODULE]` (repeatable), env `PKCS11_TOKEN_LABELS`
   * (comma-separated, same form) or `PKCS11_TOKEN_LABEL`; default `TestToken`.
   */
  tokens: ServiceToken[];
  /** User PIN of every token. Env `PKCS11_PIN` only. Never logged, never in a response. */
  pin: string;
  /** Sessions kept open. Flag `--pool-min`, env `POOL_MIN`; default 1. */
  poolMin: number;
  /** Sessions at most. Flag `--pool-max`, env `POOL_MAX`; default 4. */
  poolMax: number;
  /** How long a request waits for a session before 503. Flag `--acquire-timeout-ms`, env `ACQUIRE_TIMEOUT_MS`; default 5000. */
  acquireTimeoutMs: number;
  /** Waiting requests beyond this get 503 at once. Flag `--max-waiting`, env `MAX_WAITING`; default 1000. */
  maxWaiting: number;
  /** Largest request body in bytes (413 above). Flag `--max-body-bytes`, env `MAX_BODY_BYTES`; default 1 MiB. */
  maxBodyBytes: number;
  /** Time for a request's whole body to arrive (408 after). Flag `--body-timeout-ms`, env `BODY_TIMEOUT_MS`; default 10000. */
  bodyTimeoutMs: number;
  /** Connections the kernel queues before the service accepts them. Flag `--tcp-backlog`, env `TCP_BACKLOG`; default 511. */
  tcpBacklog: number;
  /** On SIGINT/SIGTERM, how long requests in flight may take before they are cut off. Flag `--drain-timeout-ms`, env `DRAIN_TIMEOUT_MS`; default 10000. */
  drainTimeoutMs: number;
  /** Consecutive session-open failures that open the breaker. Flag `--breaker-threshold`; default 5. */
  breakerThreshold: number;
  /** Breaker cooldown: at most `threshold` create attempts per cooldown while open. Flag `--breaker-cooldown-ms`; default 5000. */
  breakerCooldownMs: number;
  /** Turns on `POST /encrypt-per-request`. Flag `--per-request`, env `ENABLE_PER_REQUEST=1`. */
  perRequest: boolean;
  /** Key labels to create (AES-256 token keys) when the token has none. Flag `--ensure-key` (repeatable), env `ENSURE_KEYS` (comma-separated); default `default`. */
  ensureKeys: string[];
  /** When set, a PostgreSQL pool is shown in stats and metrics. Env `DATABASE_URL` only. */
  databaseUrl?: string;
}

/** A flag or variable had a value the service cannot use. */
export class ConfigError extends Error {
  /** Makes the error; `message` says what was wrong and how to fix it. */
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

const USAGE = `usage: deno task serve [options]
  --host HOST                 interface (HOST, default 127.0.0.1)
  --port N                    port, 0 = any free port (PORT, default 8080)
  --module PATH               PKCS#11 module (PKCS11_MODULE, default: SoftHSM2)
  --token LABEL[@MODULE]      token label, repeatable: several tokens with the same keys make
                              one HSM group (PKCS11_TOKEN_LABELS=a,b or PKCS11_TOKEN_LABEL,
                              default TestToken); @MODULE: that token's module, else --module
  --pool-min N / --pool-max N session pool size (POOL_MIN 1, POOL_MAX 4)
  --acquire-timeout-ms N      wait for a session before 503 (ACQUIRE_TIMEOUT_MS, 5000)
  --max-waiting N             queued requests before 503 (MAX_WAITING, 1000)
  --max-body-bytes N          request body limit, 413 above (MAX_BODY_BYTES, 1048576)
  --body-timeout-ms N         time for the whole body, 408 after (BODY_TIMEOUT_MS, 10000)
  --drain-timeout-ms N        on SIGINT/SIGTERM, wait this long for requests in flight (DRAIN_TIMEOUT_MS, 10000)
  --tcp-backlog N             pending connections the kernel queues (TCP_BACKLOG, 511)
  --breaker-threshold N       failed session opens before the breaker opens (5)
  --breaker-cooldown-ms N     breaker cooldown: one probe per cooldown/threshold while open (5000)
  --per-request               enable POST /encrypt-per-request, on the first token (ENABLE_PER_REQUEST=1)
  --ensure-key LABEL          create this AES key if missing, repeatable (ENSURE_KEYS, default)
The PIN is read from PKCS11_PIN only; DATABASE_URL adds a PostgreSQL pool to stats and metrics.`;

/** The service's command-line flags, as node:util's `parseArgs` reads them. */
export const CONFIG_FLAGS = {
  host: { type: "string" },
  port: { type: "string" },
  module: { type: "string" },
  token: { type: "string", multiple: true },
  "pool-min": { type: "string" },
  "pool-max": { type: "string" },
  "acquire-timeout-ms": { type: "string" },
  "max-waiting": { type: "string" },
  "max-body-bytes": { type: "string" },
  "body-timeout-ms": { type: "string" },
  "tcp-backlog": { type: "string" },
  "drain-timeout-ms": { type: "string" },
  "breaker-threshold": { type: "string" },
  "breaker-cooldown-ms": { type: "string" },
  "per-request": { type: "boolean" },
  "ensure-key": { type: "string", multiple: true },
} as const;

/** The `--help` text. */
export function usage(): string {
  return USAGE;
}

/**
 * Builds the configuration from flags (`args`) and environment (`env`).
 *
 * @throws {ConfigError} naming the flag or variable that is wrong.
 */
export function loadConfig(
  args: string[] = Deno.args,
  env: Record<string, string | undefined> = Deno.env.toObject(),
): ServiceConfig {
  let flags;
  try {
    flags = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: CONFIG_FLAGS,
    }).values;
  } catch (error) {
    throw new ConfigError(`${(error as Error).message}\n${USAGE}`);
  }
  const int = (flag: keyof typeof flags, envName: string | undefined, fallback: number) => {
    const fromFlag = flags[flag] as string | undefined;
    const raw = fromFlag ?? (envName ? env[envName] : undefined);
    if (raw === undefined || raw === "") return fallback;
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < 0) {
      const where = fromFlag !== undefined ? `--${flag}` : envName;
      throw new ConfigError(`${where} must be a whole number >= 0, got ${JSON.stringify(raw)}`);
    }
    return n;
  };

  const config: ServiceConfig = {
    host: flags.host ?? env.HOST ?? "127.0.0.1",
    port: int("port", "PORT", 8080),
    module: flags.module ?? (env.PKCS11_MODULE || undefined),
    tokens: tokensFrom(flags.token, env),
    pin: env.PKCS11_PIN ?? "",
    poolMin: int("pool-min", "POOL_MIN", 1),
    poolMax: int("pool-max", "POOL_MAX", 4),
    acquireTimeoutMs: int("acquire-timeout-ms", "ACQUIRE_TIMEOUT_MS", 5000),
    maxWaiting: int("max-waiting", "MAX_WAITING", 1000),
    maxBodyBytes: int("max-body-bytes", "MAX_BODY_BYTES", 1024 * 1024),
    bodyTimeoutMs: int("body-timeout-ms", "BODY_TIMEOUT_MS", 10_000),
    tcpBacklog: int("tcp-backlog", "TCP_BACKLOG", 511),
    drainTimeoutMs: int("drain-timeout-ms", "DRAIN_TIMEOUT_MS", 10_000),
    breakerThreshold: int("breaker-threshold", undefined, 5),
    breakerCooldownMs: int("breaker-cooldown-ms", undefined, 5000),
    perRequest: flags["per-request"] ?? ["1", "true", "yes"].includes(env.ENABLE_PER_REQUEST ?? ""),
    ensureKeys: flags["ensure-key"] ??
      (env.ENSURE_KEYS ?? "default").split(",").map((s) => s.trim()).filter(Boolean),
    databaseUrl: env.DATABASE_URL || undefined,
  };
  if (config.pin === "") {
    throw new ConfigError("PKCS11_PIN is not set; export the token's user PIN as PKCS11_PIN");
  }
  if (config.port > 65535) throw new ConfigError(`port must be 0..65535, got ${config.port}`);
  if (config.bodyTimeoutMs < 1) {
    throw new ConfigError("body timeout must be at least 1 ms, got 0; raise --body-timeout-ms");
  }
  if (config.tcpBacklog < 1) {
    throw new ConfigError("TCP backlog must be at least 1, got 0; raise --tcp-backlog");
  }
  if (config.poolMax < 1) throw new ConfigError(`pool max must be at least 1, got 0`);
  if (config.poolMin > config.poolMax) {
    throw new ConfigError(
      `pool min (${config.poolMin}) is above pool max (${config.poolMax}); lower --pool-min`,
    );
  }
  return config;
}

/** A token given as `LABEL` or `LABEL@MODULE`, by `where` (a flag or variable). */
function parseToken(text: string, where: string): ServiceToken {
  const at = text.indexOf("@");
  const label = (at < 0 ? text : text.slice(0, at)).trim();
  const module = at < 0 ? undefined : text.slice(at + 1).trim();
  if (label === "" || label.length > 32) {
    throw new ConfigError(
      `${where} needs a token label of 1 to 32 characters (LABEL or LABEL@MODULE), got ` +
        JSON.stringify(text),
    );
  }
  if (module === "") {
    throw new ConfigError(`${where} "${text}" has an empty module after @: give its path`);
  }
  return module === undefined ? { label } : { label, module };
}

/** The tokens from `--token` flags, else `PKCS11_TOKEN_LABELS`, else `PKCS11_TOKEN_LABEL`. */
function tokensFrom(
  flags: string[] | undefined,
  env: Record<string, string | undefined>,
): ServiceToken[] {
  if (env.PKCS11_TOKEN_LABELS && env.PKCS11_TOKEN_LABEL) {
    throw new ConfigError(
      "PKCS11_TOKEN_LABELS and PKCS11_TOKEN_LABEL are both set: keep one (LABELS takes a list)",
    );
  }
  const tokens = flags?.length
    ? flags.map((f) => parseToken(f, "--token"))
    : env.PKCS11_TOKEN_LABELS
    ? env.PKCS11_TOKEN_LABELS.split(",").map((t) => parseToken(t, "PKCS11_TOKEN_LABELS"))
    : [{ label: env.PKCS11_TOKEN_LABEL || "TestToken" }];
  const seen = new Set<string>();
  for (const { label } of tokens) {
    // Labels name the members in stats, health and metrics.
    if (seen.has(label)) {
      throw new ConfigError(`token "${label}" is given twice: name each token once`);
    }
    seen.add(label);
  }
  return tokens;
}

/** The configuration as safe-to-log text: the PIN and database URL are left out. */
export function describeConfig(config: ServiceConfig): Record<string, unknown> {
  const { pin: _pin, databaseUrl, ...rest } = config;
  return { ...rest, pin: "(from PKCS11_PIN, not shown)", database: databaseUrl ? "set" : "off" };
}

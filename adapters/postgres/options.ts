/**
 * What `createPostgresPool` accepts, checked strictly: an unknown option, at the top, in `pool`
 * or in a call's options, is a `TypeError` naming it and the nearest known one. Also the pool
 * strategies psycopg2 and SQLAlchemy users know, as ready-made `pool` settings.
 *
 * @module
 */
import type { PoolSettings } from "../../mod.ts";
import { rejectUnknownOptions } from "../../pool/options.ts";
import type { DriverOptions, PooledConnection } from "./connection.ts";
import type { Target } from "./errors.ts";
import type { CredentialsSource } from "./credentials.ts";
import {
  type HostAddress,
  hostsOfDriver,
  isPort,
  type ParsedUrl,
  parseHost,
  parseUrl,
} from "./connection_url.ts";

/** The pool's own settings (everything but the factory, which the adapter provides). */
export type PostgresPoolSettings = PoolSettings<PooledConnection>;

/**
 * How a connection is cleaned when a lease ends. A transaction left open is always rolled back.
 *
 * - `"always"` (default): the session is made as clean as a new connection's: settings (`SET`,
 *   `SET ROLE`, `SET SESSION AUTHORIZATION`, `set_config`), temporary tables, advisory locks,
 *   `LISTEN`, cursors, SQL-level prepared statements (also those made inside functions),
 *   sequence state. Sent as the lease ends, without waiting for its answer.
 * - `"never"`: only the rollback. Session state stays for the next borrower.
 */
export type SessionReset = "always" | "never";

/**
 * Which server a new connection must reach, with libpq's meanings (`target_session_attrs`):
 * - `"any"` (default): the first host that accepts the connection.
 * - `"read-write"`: one that accepts writes (`transaction_read_only` off).
 * - `"read-only"`: one that does not (`transaction_read_only` on: a standby, or a server or role
 *   with `default_transaction_read_only = on`).
 * - `"primary"`: one not in recovery. `"standby"`: one in recovery (a hot standby).
 * - `"prefer-standby"`: a standby if any host is one, else any host.
 */
export type TargetSessionAttrs =
  | "any"
  | "read-write"
  | "read-only"
  | "primary"
  | "standby"
  | "prefer-standby";

/**
 * How new connections spread over the hosts (libpq 16's `load_balance_hosts`): `"disable"`
 * (default) tries them in the order given; `"random"` in a random order per connection.
 */
export type LoadBalanceHosts = "disable" | "random";

/** One server: `"10.0.0.2:5433"` (port 5432 when left out) or `{ host, port }`. */
export type HostOption = string | { host: string; port?: number };

/** Options of {@link createPostgresPool}: the URL, pool settings and postgres.js options. */
export interface PostgresPoolOptions extends DriverOptions {
  /**
   * Connection URL, libpq's form; several hosts as `postgres://app@h1:5432,h2:5433/db`, and
   * `target_session_attrs` / `load_balance_hosts` as its parameters.
   * Default: the `DATABASE_URL` environment variable.
   */
  url?: string;
  /**
   * The servers, in order: a primary and its standbys, say. Replaces the host and port of `url`
   * (a URL naming several hosts and `hosts` together is an error).
   */
  hosts?: HostOption[];
  /** Which server a new connection must reach (see {@link TargetSessionAttrs}). */
  targetSessionAttrs?: TargetSessionAttrs;
  /** How new connections spread over the hosts (see {@link LoadBalanceHosts}). */
  loadBalanceHosts?: LoadBalanceHosts;
  /**
   * Called for each new connection for the user and password to log in with (a cloud IAM token,
   * a secrets manager's dynamic role). When what it returns changes and a connection has logged
   * in with the new credentials, every connection made with the old ones is retired (idle ones at
   * once, lent ones as they come back), as `pool.invalidate()` does; credentials returned with
   * an `expiresAt` are reused until then. The password never appears in an error, event or
   * statistic.
   */
  credentials?: CredentialsSource;
  /**
   * Pool settings. The adapter's defaults differ from the core's in three places:
   * `name: "postgres"`, `reentrant: true` (nested calls join the outer connection and
   * transaction) and `validateAfterMs: 1000` (ping a connection idle for a second or more;
   * `Infinity` turns validation off). A connection whose socket is known to be closed is never
   * lent, whatever `validateAfterMs` says.
   */
  pool?: PostgresPoolSettings;
  /** How each connection is cleaned when a lease ends (see {@link SessionReset}). */
  reset?: SessionReset;
  /**
   * How many one-shot `query()` statements (outside `use()`/`transaction()`, without call
   * options) may share one lease, pipelined on its connection; the cleaning then runs once per
   * lease. Only statements that cannot change the session or a transaction share. Default 100;
   * `1`: each one-shot has a lease of its own.
   */
  oneShotBatch?: number;
}

/** Per-call options of `use()`, `transaction()` and `query()`. */
export interface CallOptions {
  /**
   * The call's timeout in ms: the wait for a connection plus every statement. When it passes,
   * the call rejects with `PostgresTimeoutError`, the running statement is cancelled on the
   * server and the connection destroyed. (The pool's `acquireTimeoutMs` still bounds the wait.)
   */
  timeoutMs?: number;
  /** Aborting it ends the call as `timeoutMs` does, rejecting with `signal.reason`. */
  signal?: AbortSignal;
}

/** Options of `transaction()`. */
export interface TransactionOptions extends CallOptions {
  /** Isolation level of a new transaction (ignored by a nested one: a savepoint). */
  isolation?: "read committed" | "repeatable read" | "serializable";
  /** `BEGIN READ ONLY` (ignored by a nested one: a savepoint). */
  readOnly?: boolean;
}

/** Default of the `oneShotBatch` option (postgres.js's `max_pipeline` default). */
const DEFAULT_ONE_SHOT_BATCH = 100;

/**
 * What one connection is opened with: the URL and driver options naming one server (the host
 * list picks it, see hosts.ts) and fixed credentials.
 */
export interface ConnectionSpec {
  /** The URL given (or `DATABASE_URL`), without the adapter's own parameters; or `undefined`. */
  url: string | undefined;
  /** postgres.js options (the adapter's own are added by the connection). */
  driver: DriverOptions;
  /** Where it goes, without the password: for messages. */
  target: Target;
  /** `reset: "always"`. */
  cleanSession: boolean;
}

/** The servers and how a connection picks one. */
export interface HostsSpec {
  /** In the order given (at least one). */
  addresses: HostAddress[];
  targetSessionAttrs: TargetSessionAttrs;
  loadBalanceHosts: LoadBalanceHosts;
  credentials: CredentialsSource | undefined;
  /** Whether the driver options name a Unix socket (`path`): the host is not passed on. */
  socketPath: boolean;
}

/** The options, checked and resolved. */
export interface ResolvedOptions {
  spec: ConnectionSpec;
  hosts: HostsSpec;
  settings: PostgresPoolSettings;
  oneShotBatch: number;
}

type Words<S extends string> = S extends `${infer H} ${infer T}` ? H | Words<T> : S;
/** The space-separated names, checked at compile time to be exactly the keys of `T`. */
const keysOf = <T>() =>
<S extends string[]>(
  ...names: [Words<S[number]>] extends [keyof T] ? [keyof T] extends [Words<S[number]>] ? S
    : never
    : never
): ReadonlySet<string> => new Set(names.join(" ").split(" "));

const OWN_KEYS = keysOf<Omit<PostgresPoolOptions, keyof DriverOptions>>()(
  "url pool reset oneShotBatch hosts targetSessionAttrs loadBalanceHosts credentials",
);
const DRIVER_KEYS = keysOf<DriverOptions & { socket: unknown }>()(
  "host hostname port path database db user username pass password ssl connect_timeout types",
  "prepare onnotice onparameter debug transform connection fetch_types",
  "publications backoff keep_alive socket",
);
const HOST_KEYS = new Set(["host", "port"]);
const TARGET_SESSION_ATTRS: readonly TargetSessionAttrs[] = [
  "any",
  "read-write",
  "read-only",
  "primary",
  "standby",
  "prefer-standby",
];
const LOAD_BALANCE_HOSTS: readonly LoadBalanceHosts[] = ["disable", "random"];
const POOL_KEYS = keysOf<PostgresPoolSettings>()(
  "name min max maxIdle acquireTimeoutMs idleTimeoutMs maxLifetimeMs maxUses validateAfterMs",
  "leakDetectionMs healthCheckIntervalMs hookTimeoutMs breaker order reentrant maxWaiting",
);
const BREAKER_KEYS = keysOf<Exclude<PostgresPoolSettings["breaker"], false | undefined>>()(
  "threshold cooldownMs",
);
const CALL_KEYS = keysOf<CallOptions>()("timeoutMs signal");
const TRANSACTION_KEYS = keysOf<TransactionOptions>()("timeoutMs signal isolation readOnly");
const QUEUE_POOL_KEYS = keysOf<QueuePoolOptions>()(
  "poolSize maxOverflow poolTimeout poolRecycle prePing",
);

/** Checks and resolves the options of `createPostgresPool`. */
export function resolveOptions(options: PostgresPoolOptions): ResolvedOptions {
  const where = "createPostgresPool";
  checkObject(where, "options", options);
  if ("target_session_attrs" in options) {
    throw new TypeError(
      `${where}: target_session_attrs is not passed to postgres.js: the pool checks each new ` +
        `connection itself. Use { targetSessionAttrs: ${
          JSON.stringify(options.target_session_attrs)
        } } (${TARGET_SESSION_ATTRS.join(", ")})`,
    );
  }
  checkKeys(where, "", options, OWN_KEYS, DRIVER_KEYS);
  const {
    url: givenUrl,
    pool,
    reset,
    oneShotBatch,
    hosts,
    targetSessionAttrs,
    loadBalanceHosts,
    credentials,
    ...driver
  } = options;
  if (pool !== undefined) {
    checkObject(where, "pool", pool);
    checkKeys(where, "pool.", pool, POOL_KEYS);
    if (pool.breaker !== undefined && pool.breaker !== false) {
      checkObject(where, "pool.breaker", pool.breaker);
      checkKeys(where, "pool.breaker.", pool.breaker, BREAKER_KEYS);
    }
  }
  if (reset !== undefined && reset !== "always" && reset !== "never") {
    throw new TypeError(`${where}: reset must be "always" or "never", got ${describe(reset)}`);
  }
  if (credentials !== undefined && typeof credentials !== "function") {
    throw new TypeError(
      `${where}: credentials must be a function returning { user, password } (or a promise of ` +
        `it), got ${describe(credentials)}`,
    );
  }
  const givenHosts = hosts === undefined ? undefined : checkHosts(where, hosts);
  const rawUrl = givenUrl ?? Deno.env.get("DATABASE_URL");
  if (rawUrl === undefined && driver.host === undefined && givenHosts === undefined) {
    throw new TypeError(
      `${where}: no database given. Pass { url: 'postgres://user:password@host:5432/db' } ` +
        "or set the DATABASE_URL environment variable.",
    );
  }
  const parsed = rawUrl === undefined ? undefined : parseUrl(rawUrl, Number(driver.port ?? 5432));
  if (givenHosts !== undefined && parsed !== undefined && parsed.hosts.length > 1) {
    throw new TypeError(
      `${where}: the hosts are given twice, in url (${parsed.hosts.length} hosts) and in the ` +
        "hosts option: name them in one place",
    );
  }
  const defaultPort = Number(driver.port ?? parsed?.hosts[0]?.port ?? 5432);
  const addresses = givenHosts ?? hostsOfDriver(driver, defaultPort) ??
    (parsed?.hosts.length ? parsed.hosts : [{ host: "localhost", port: defaultPort }]);
  const target = targetOf(parsed, driver, addresses[0]);
  return {
    spec: {
      url: parsed?.url,
      driver: { connect_timeout: 10, ...driver },
      target,
      cleanSession: reset !== "never",
    },
    hosts: {
      addresses,
      targetSessionAttrs: oneOf(
        where,
        "targetSessionAttrs",
        targetSessionAttrs,
        "target_session_attrs",
        parsed?.targetSessionAttrs,
        TARGET_SESSION_ATTRS,
      ) ?? "any",
      loadBalanceHosts: oneOf(
        where,
        "loadBalanceHosts",
        loadBalanceHosts,
        "load_balance_hosts",
        parsed?.loadBalanceHosts,
        LOAD_BALANCE_HOSTS,
      ) ?? "disable",
      credentials,
      socketPath: driver.path !== undefined,
    },
    settings: pool ?? {},
    oneShotBatch: checkOneShotBatch(oneShotBatch),
  };
}

/**
 * An option that may also come as a URL parameter: checked against `accepted`; given both ways,
 * the two must agree.
 */
function oneOf<T extends string>(
  where: string,
  name: string,
  value: unknown,
  urlName: string,
  urlValue: string | undefined,
  accepted: readonly T[],
): T | undefined {
  const check = (what: string, v: unknown): T | undefined => {
    if (v === undefined || accepted.includes(v as T)) return v as T | undefined;
    throw new TypeError(
      `${where}: ${what} must be one of ${accepted.map((a) => `"${a}"`).join(", ")}, got ${
        describe(v)
      }`,
    );
  };
  const option = check(name, value);
  const fromUrl = check(`the URL's ${urlName}`, urlValue);
  if (option !== undefined && fromUrl !== undefined && option !== fromUrl) {
    throw new TypeError(
      `${where}: ${name} is "${option}" but the URL's ${urlName} is "${fromUrl}": give it once`,
    );
  }
  return option ?? fromUrl;
}

function checkHosts(where: string, hosts: unknown): HostAddress[] {
  if (!Array.isArray(hosts) || hosts.length === 0) {
    throw new TypeError(
      `${where}: hosts must be a non-empty array of "host:port" strings or { host, port } ` +
        `objects, got ${Array.isArray(hosts) ? "an empty array" : describe(hosts)}`,
    );
  }
  return hosts.map((entry, i) => {
    const name = `hosts[${i}]`;
    if (typeof entry === "string") {
      const address = parseHost(entry, 5432);
      if (address !== undefined) return address;
      throw new TypeError(
        `${where}: ${name} must be "host" or "host:port", got ${describe(entry)}`,
      );
    }
    checkObject(where, name, entry);
    checkKeys(where, `${name}.`, entry, HOST_KEYS);
    const { host, port = 5432 } = entry as { host?: unknown; port?: unknown };
    if (typeof host !== "string" || host === "") {
      throw new TypeError(`${where}: ${name}.host must be a host name, got ${describe(host)}`);
    }
    if (!isPort(port)) {
      throw new TypeError(
        `${where}: ${name}.port must be a TCP port number, got ${describe(port)}`,
      );
    }
    return { host, port: port as number };
  });
}

/** Checks a call's options (`transaction: true` also allows isolation and readOnly). */
export function checkCallOptions(where: string, options: unknown, transaction = false): void {
  if (options === undefined) return;
  checkObject(where, "options", options);
  checkKeys(where, "", options as object, transaction ? TRANSACTION_KEYS : CALL_KEYS);
  const { timeoutMs } = options as CallOptions;
  if (timeoutMs !== undefined && (typeof timeoutMs !== "number" || !(timeoutMs >= 0))) {
    throw new TypeError(
      `${where}: timeoutMs must be a number of milliseconds >= 0, got ${describe(timeoutMs)}`,
    );
  }
}

function checkOneShotBatch(value: unknown): number {
  if (value === undefined) return DEFAULT_ONE_SHOT_BATCH;
  if (typeof value === "number" && Number.isInteger(value) && value >= 1) return value;
  throw new TypeError(
    `createPostgresPool: oneShotBatch must be an integer >= 1 (1: no sharing), got ${
      describe(value)
    }`,
  );
}

function checkObject(where: string, name: string, value: unknown): void {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) return;
  throw new TypeError(`${where}: ${name} must be an object, got ${describe(value)}`);
}

/** Refuses a key of `value` that none of the `known` sets holds, naming the nearest one. */
function checkKeys(
  where: string,
  prefix: string,
  value: object,
  ...known: ReadonlySet<string>[]
): void {
  rejectUnknownOptions(where, value, known.flatMap((names) => [...names]), prefix);
}

/** A value for a message: never an object's content (it may hold a password). */
export function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  return `${typeof value} ${JSON.stringify(value)}`;
}

function targetOf(
  parsed: ParsedUrl | undefined,
  driver: DriverOptions,
  first: HostAddress,
): Target {
  const user = driver.user ?? driver.username ?? parsed?.user ?? "";
  return {
    host: driver.path ?? first.host,
    port: first.port,
    user: user || "(default user)",
    database: driver.database ?? driver.db ?? (parsed?.database || user || "(default)"),
  };
}

/**
 * Pool strategy: no pool (SQLAlchemy `NullPool`, psycopg2 without a pool): a fresh connection
 * for every call, closed on release. For scripts, or behind PgBouncer when the app must hold
 * nothing.
 */
export function noPool(): PostgresPoolSettings {
  return { min: 0, maxIdle: 0, validateAfterMs: Infinity };
}

/**
 * Pool strategy: one shared connection (SQLAlchemy `StaticPool`): callers take turns.
 * Reentrant, so a nested `use()`/`transaction()` reuses it instead of waiting for itself.
 */
export function singleConnection(): PostgresPoolSettings {
  return { min: 0, max: 1, reentrant: true };
}

/** SQLAlchemy `QueuePool` arguments, with SQLAlchemy's units (seconds) and defaults. */
export interface QueuePoolOptions {
  /** Connections kept open when idle (`pool_size`). Default 5. */
  poolSize?: number;
  /** Extra connections allowed under load, closed on release (`max_overflow`). Default 10. */
  maxOverflow?: number;
  /** Seconds to wait for a connection before `PoolTimeoutError` (`pool_timeout`). Default 30. */
  poolTimeout?: number;
  /** Seconds after which a connection is replaced (`pool_recycle`); -1 = never. Default -1. */
  poolRecycle?: number;
  /** Ping a connection before every checkout (`pool_pre_ping`). Default false. */
  prePing?: boolean;
}

/**
 * Pool strategy: the classic queue pool (SQLAlchemy `QueuePool`): `poolSize` connections kept,
 * up to `maxOverflow` more under load, `poolTimeout` to wait, `poolRecycle` to replace old ones
 * and `prePing` to check each one on checkout.
 */
export function queuePool(options: QueuePoolOptions = {}): PostgresPoolSettings {
  checkKeys("queuePool", "", options, QUEUE_POOL_KEYS);
  const { poolSize = 5, maxOverflow = 10, poolTimeout = 30, poolRecycle = -1, prePing = false } =
    options;
  return {
    max: poolSize + maxOverflow,
    maxIdle: poolSize,
    acquireTimeoutMs: poolTimeout * 1_000,
    maxLifetimeMs: poolRecycle < 0 ? Infinity : poolRecycle * 1_000,
    validateAfterMs: prePing ? 0 : Infinity,
  };
}

/**
 * Pool strategy: a persistent connection per async context (psycopg2
 * `PersistentConnectionPool`, which keys connections by thread): every call nested in an outer
 * one, in the same async call chain, gets the outer call's connection.
 */
export function perContext(max = 10): PostgresPoolSettings {
  return { max, reentrant: true };
}

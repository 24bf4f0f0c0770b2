/**
 * Checks a pool's options, fills in the defaults, and names what is wrong
 * when an option (or a per-call option) is not what it should be.
 * {@link rejectUnknownOptions} is meant for any options object, adapters'
 * included.
 *
 * @module
 */
import type { PoolOptions } from "./types.ts";

/** Pool options with every default filled in and every value checked. */
export interface ResolvedOptions {
  name: string;
  min: number;
  max: number;
  maxIdle: number;
  /** Whether `maxIdle` was given, or follows `max` on resize. */
  maxIdleExplicit: boolean;
  acquireTimeoutMs: number;
  idleTimeoutMs: number;
  maxLifetimeMs: number;
  maxUses: number;
  validateAfterMs: number;
  leakDetectionMs: number;
  healthCheckIntervalMs: number;
  hookTimeoutMs: number;
  breakerThreshold: number;
  breakerCooldownMs: number;
  order: "lifo" | "fifo";
  reentrant: boolean;
  maxWaiting: number;
}

/** The defaults, as documented in docs/pool.md and on {@link PoolOptions}. */
export const DEFAULTS = {
  name: "pool",
  min: 0,
  max: 10,
  acquireTimeoutMs: 30_000,
  idleTimeoutMs: 300_000,
  maxLifetimeMs: 1_800_000,
  maxUses: Infinity,
  validateAfterMs: 0,
  leakDetectionMs: 0,
  healthCheckIntervalMs: 0,
  hookTimeoutMs: 5_000,
  breakerThreshold: 5,
  breakerCooldownMs: 5_000,
  maxWaiting: Infinity,
} as const;

/**
 * Fills in defaults and checks every option, throwing a `TypeError` or
 * `RangeError` that names the option, the bad value and what is allowed.
 */
export function resolveOptions<R>(options: PoolOptions<R>): ResolvedOptions {
  if (options === null || typeof options !== "object") {
    throw new TypeError(`Pool options must be an object with at least { create }, got ${options}`);
  }
  if (typeof options.create !== "function") {
    throw new TypeError(
      "Pool option 'create' must be a function (signal) => Promise<resource>, got " +
        typeof options.create,
    );
  }
  rejectUnknownOptions("Pool", options, POOL_OPTIONS);
  for (const hook of ["destroy", "validate", "reset", "isFatal", "isPermanent"] as const) {
    if (options[hook] !== undefined && typeof options[hook] !== "function") {
      throw new TypeError(`Pool option '${hook}' must be a function, got ${typeof options[hook]}`);
    }
  }
  const max = count("max", options.max, DEFAULTS.max, 1);
  const min = count("min", options.min, DEFAULTS.min, 0);
  if (min > max) throw new RangeError(`Pool option 'min' (${min}) must not exceed 'max' (${max})`);
  const maxIdle = count("maxIdle", options.maxIdle, max, 0);
  if (maxIdle < min) {
    throw new RangeError(
      `Pool option 'maxIdle' (${maxIdle}) must be at least 'min' (${min}), or the pool would ` +
        "destroy what it just topped up",
    );
  }
  const breaker = options.breaker;
  if (
    breaker !== undefined && breaker !== false && (breaker === null || typeof breaker !== "object")
  ) {
    throw new TypeError(
      `Pool option 'breaker' must be { threshold?, cooldownMs? } or false, got ${breaker}`,
    );
  }
  if (breaker) rejectUnknownOptions("Pool option 'breaker'", breaker, BREAKER_OPTIONS);
  const order = options.order ?? "lifo";
  if (order !== "lifo" && order !== "fifo") {
    throw new RangeError(
      `Pool option 'order' must be "lifo" or "fifo", got ${JSON.stringify(order)}`,
    );
  }
  const name = options.name ?? DEFAULTS.name;
  if (typeof name !== "string" || name === "") {
    throw new TypeError(
      `Pool option 'name' must be a non-empty string, got ${JSON.stringify(name)}`,
    );
  }
  return {
    name,
    min,
    max,
    maxIdle,
    maxIdleExplicit: options.maxIdle !== undefined,
    acquireTimeoutMs: duration(
      "acquireTimeoutMs",
      options.acquireTimeoutMs,
      DEFAULTS.acquireTimeoutMs,
    ),
    idleTimeoutMs: duration("idleTimeoutMs", options.idleTimeoutMs, DEFAULTS.idleTimeoutMs),
    maxLifetimeMs: duration("maxLifetimeMs", options.maxLifetimeMs, DEFAULTS.maxLifetimeMs),
    maxUses: count("maxUses", options.maxUses, DEFAULTS.maxUses, 1),
    validateAfterMs: duration("validateAfterMs", options.validateAfterMs, DEFAULTS.validateAfterMs),
    leakDetectionMs: duration("leakDetectionMs", options.leakDetectionMs, DEFAULTS.leakDetectionMs),
    healthCheckIntervalMs: duration(
      "healthCheckIntervalMs",
      options.healthCheckIntervalMs,
      DEFAULTS.healthCheckIntervalMs,
    ),
    hookTimeoutMs: duration("hookTimeoutMs", options.hookTimeoutMs, DEFAULTS.hookTimeoutMs),
    breakerThreshold: breaker === false
      ? Infinity
      : count("breaker.threshold", breaker?.threshold, DEFAULTS.breakerThreshold, 1),
    // A disabled breaker still opens on a permanent failure, for the default cooldown.
    breakerCooldownMs: breaker === false
      ? DEFAULTS.breakerCooldownMs
      : duration("breaker.cooldownMs", breaker?.cooldownMs, DEFAULTS.breakerCooldownMs),
    order,
    reentrant: options.reentrant === true,
    maxWaiting: count("maxWaiting", options.maxWaiting, DEFAULTS.maxWaiting, 0),
  };
}

/** Every key of {@link PoolOptions}. */
const POOL_OPTIONS: readonly (keyof PoolOptions<unknown>)[] = [
  "create",
  "destroy",
  "validate",
  "reset",
  "isFatal",
  "isPermanent",
  "name",
  "min",
  "max",
  "maxIdle",
  "acquireTimeoutMs",
  "idleTimeoutMs",
  "maxLifetimeMs",
  "maxUses",
  "validateAfterMs",
  "leakDetectionMs",
  "healthCheckIntervalMs",
  "hookTimeoutMs",
  "breaker",
  "order",
  "reentrant",
  "maxWaiting",
];
const BREAKER_OPTIONS = ["threshold", "cooldownMs"] as const;

/** The options of `map()`. */
export const MAP_OPTIONS = ["signal", "timeoutMs", "concurrency"] as const;
/** The options of `events()`. */
export const EVENTS_OPTIONS = ["signal", "bufferSize"] as const;
/** The options of `close()`. */
export const CLOSE_OPTIONS = ["timeoutMs"] as const;

/**
 * Throws a `TypeError` for the first own string key of `options` that is
 * not in `known`, naming it and the nearest known option:
 * `Pool: 'idleTimeout' is not an option; did you mean 'idleTimeoutMs'?`,
 * or listing the options when none is near. A misspelled option is an
 * error, never a silent default. `where` names whose options they are
 * (`"Pool"`, `"close()"`). Symbol keys are ignored.
 *
 * @example An adapter checks its own options
 * ```ts ignore
 * rejectUnknownOptions("postgresPool()", options, ["url", "pool", "driver"]);
 * ```
 */
export function rejectUnknownOptions(
  where: string,
  options: object,
  known: readonly string[],
  prefix = "",
): void {
  const error = unknownOptionError(where, options, known, prefix);
  if (error !== undefined) throw error;
}

/**
 * The `TypeError` {@link rejectUnknownOptions} throws, or `undefined` when
 * every key is known: for a caller that must reject a promise instead.
 * `prefix` names nested options by their path (`"pool."` gives `'pool.mx'`).
 */
export function unknownOptionError(
  where: string,
  options: object,
  known: readonly string[],
  prefix = "",
): TypeError | undefined {
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    const nearest = nearestName(key, known);
    return new TypeError(
      `${where}: '${prefix}${key}' is not an option; ` +
        (nearest === undefined
          ? `the options are ${known.map((k) => `'${prefix}${k}'`).join(", ")}`
          : `did you mean '${prefix}${nearest}'?`),
    );
  }
  return undefined;
}

/**
 * The name in `known` closest to `name`: the fewest single-character edits
 * (ignoring case), if it is close enough to be a likely misspelling (at
 * most a third of the longer name's length, and 2 edits always, so that
 * `idleTimeout` finds `idleTimeoutMs`).
 */
export function nearestName(name: string, known: readonly string[]): string | undefined {
  const lower = name.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const other = candidate.toLowerCase();
    const distance = editDistance(lower, other);
    const allowed = Math.max(2, Math.floor(Math.max(lower.length, other.length) / 3));
    if (distance <= allowed && distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** Levenshtein distance: insertions, deletions and substitutions turning `a` into `b`. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1);
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, substitution);
    }
    previous = current;
  }
  return previous[b.length];
}

/** Whose option a value is, as messages name it: `Pool option`, `acquire() option`. */
export type OptionOwner = "Pool" | `${string}()`;

/** A whole number ≥ `least`, or `Infinity`. */
export function count(
  option: string,
  value: unknown,
  fallback: number,
  least: number,
  owner: OptionOwner = "Pool",
): number {
  if (value === undefined) return fallback;
  if (
    typeof value !== "number" || !(Number.isInteger(value) || value === Infinity) || value < least
  ) {
    throw new RangeError(
      `${owner} option '${option}' must be a whole number ≥ ${least} (or Infinity), got ${
        typeof value === "string" ? JSON.stringify(value) : value
      }`,
    );
  }
  return value;
}

/** A duration in milliseconds: a number ≥ 0, or `Infinity`. */
export function duration(
  option: string,
  value: unknown,
  fallback: number,
  owner: OptionOwner = "Pool",
): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || Number.isNaN(value) || value < 0) {
    throw new RangeError(
      `${owner} option '${option}' must be a duration in milliseconds ≥ 0 (or Infinity), got ${
        typeof value === "string" ? JSON.stringify(value) : value
      }`,
    );
  }
  return value;
}

/** New bounds for `resize()`, checked against each other and `maxIdle`. */
export function resizedBounds(
  opts: ResolvedOptions,
  bounds: { min?: number; max?: number },
): { min: number; max: number; maxIdle: number } {
  if (bounds === null || typeof bounds !== "object") {
    throw new TypeError(`resize() takes { min?, max? }, got ${bounds}`);
  }
  rejectUnknownOptions("resize()", bounds, ["min", "max"]);
  const max = count("max", bounds.max, opts.max, 1, "resize()");
  const min = count("min", bounds.min, Math.min(opts.min, max), 0, "resize()");
  if (min > max) {
    throw new RangeError(`resize() option 'min' (${min}) must not exceed 'max' (${max})`);
  }
  const maxIdle = opts.maxIdleExplicit ? Math.min(opts.maxIdle, max) : max;
  if (maxIdle < min) {
    throw new RangeError(
      `resize() option 'min' (${min}) must not exceed the pool's 'maxIdle' (${maxIdle})`,
    );
  }
  return { min, max, maxIdle };
}

/** The `RangeError` for a caller's `timeoutMs` that is not a duration, naming the call. */
export function badTimeout(value: unknown, owner: OptionOwner): RangeError {
  try {
    duration("timeoutMs", value, 0, owner);
  } catch (error) {
    return error as RangeError;
  }
  return new RangeError(`${owner} option 'timeoutMs' is invalid: ${value}`);
}

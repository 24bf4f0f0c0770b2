/**
 * The names, units and descriptions of OpenTelemetry's semantic conventions
 * for database client connection pools (`db.client.connection.*`,
 * experimental in semantic conventions 1.26+). Every pool, whatever it pools
 * (PostgreSQL connections, PKCS#11 sessions), is reported with these.
 *
 * @module
 */

/** The attribute naming the pool; unique within the application. */
export const POOL_NAME = "db.client.connection.pool.name";
/** The attribute telling `idle` from `used` connections. */
export const CONNECTION_STATE = "db.client.connection.state";

/** One instrument: its conventional name, UCUM unit and description. */
export interface InstrumentConvention {
  /** Metric name. */
  readonly name: string;
  /** UCUM unit. */
  readonly unit: string;
  /** What it measures. */
  readonly description: string;
}

/** UpDownCounter, by `db.client.connection.state` (`idle` | `used`). */
export const CONNECTION_COUNT: InstrumentConvention = {
  name: "db.client.connection.count",
  unit: "{connection}",
  description:
    "The number of connections that are currently in state described by the state attribute.",
};
/** UpDownCounter: `maxIdle` of the pool. */
export const CONNECTION_IDLE_MAX: InstrumentConvention = {
  name: "db.client.connection.idle.max",
  unit: "{connection}",
  description: "The maximum number of idle open connections allowed.",
};
/** UpDownCounter: `min` of the pool (kept alive, idle when unused). */
export const CONNECTION_IDLE_MIN: InstrumentConvention = {
  name: "db.client.connection.idle.min",
  unit: "{connection}",
  description: "The minimum number of idle open connections allowed.",
};
/** UpDownCounter: `max` of the pool. */
export const CONNECTION_MAX: InstrumentConvention = {
  name: "db.client.connection.max",
  unit: "{connection}",
  description: "The maximum number of open connections allowed.",
};
/** UpDownCounter: callers waiting for a connection. */
export const PENDING_REQUESTS: InstrumentConvention = {
  name: "db.client.connection.pending_requests",
  unit: "{request}",
  description: "The number of current pending requests for an open connection.",
};
/** Counter: acquires that gave up at their deadline. */
export const CONNECTION_TIMEOUTS: InstrumentConvention = {
  name: "db.client.connection.timeouts",
  unit: "{timeout}",
  description:
    "The number of connection timeouts that have occurred trying to obtain a connection from the pool.",
};
/** Histogram, seconds: how long `create` took. */
export const CREATE_TIME: InstrumentConvention = {
  name: "db.client.connection.create_time",
  unit: "s",
  description: "The time it took to create a new connection.",
};
/** Histogram, seconds: how long an acquire waited for a lease. */
export const WAIT_TIME: InstrumentConvention = {
  name: "db.client.connection.wait_time",
  unit: "s",
  description: "The time it took to obtain an open connection from the pool.",
};
/** Histogram, seconds: how long a lease was held. */
export const USE_TIME: InstrumentConvention = {
  name: "db.client.connection.use_time",
  unit: "s",
  description: "The time between borrowing a connection and returning it to the pool.",
};

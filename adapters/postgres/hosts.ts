/**
 * The servers a pool connects to, as libpq sees them: a list of hosts tried in order (or in a
 * random order, `loadBalanceHosts: "random"`), each new connection checked for the role
 * `targetSessionAttrs` asks for before the pool lends it, and each host's role as last seen.
 *
 * Each host has its own circuit breaker (the core's {@link CircuitBreaker}, threshold 1): a host
 * that fails to connect is `down` and new connections skip it, so a dead or silent host costs a
 * create its connect timeout once, not every time. While it is down it is probed in the
 * background, once per {@link PROBE_INTERVAL_MS}, until it answers (`up` again). With a single
 * host nothing is skipped: the pool's own backoff and breaker pace the retries.
 *
 * A promotion (reported by PostgreSQL 14+ as `in_hot_standby`, or seen by a new connection's
 * check) changes the host's role: each of its connections is checked again and retired when it
 * no longer matches. A write refused with `25006` retires the connection that met it only:
 * read-only can be set per session, so one session's answer says nothing of the server.
 *
 * @module
 */
import { CircuitBreaker } from "../../pool/creator.ts";
import { type ConnectionWatch, PgConnection, type ServerState } from "./connection.ts";
import { CredentialsSupplier, type Login } from "./credentials.ts";
import {
  isPermanentConnectError,
  NoEligibleHostError,
  PostgresConnectionError,
  roleChangedError,
} from "./errors.ts";
import type { HostEvent, HostRole, HostStats } from "./host_events.ts";
import type { HostAddress } from "./connection_url.ts";
import type { ConnectionSpec, HostsSpec, TargetSessionAttrs } from "./options.ts";

/** How often a down host is probed, while there are others to use. */
export const PROBE_INTERVAL_MS = 1_000;

/** One server of the list. */
class Host {
  /** `host:port`: in stats, events, messages and metric labels. */
  readonly label: string;
  /** Closed: up. Open: down, skipped. Half-open: down, a probe is under way. */
  readonly breaker = new CircuitBreaker(1, PROBE_INTERVAL_MS);
  /** Whether it is a standby, and read-only, as last seen. */
  readonly server: ServerState = { standby: undefined, readOnly: undefined };
  /** Bumped when its role changes: its connections are then checked again. */
  epoch = 0;
  /** Pooled connections on it. */
  connections = 0;
  /** The last failure to connect (never a password). */
  lastError: string | undefined;
  /** How its connections are followed (set by the list). */
  watch: ConnectionWatch | undefined;
  probeTimer: ReturnType<typeof setTimeout> | undefined;
  probing: Promise<void> | undefined;

  constructor(readonly address: HostAddress) {
    this.label = `${address.host}:${address.port}`;
  }

  get role(): HostRole {
    const standby = this.server.standby;
    return standby === undefined ? "unknown" : standby ? "standby" : "primary";
  }

  get up(): boolean {
    return this.breaker.state === "closed";
  }
}

/** Whether a server in `state` is what `attrs` asks for (`undefined`: not known). */
export function accepts(attrs: TargetSessionAttrs, state: ServerState): boolean | undefined {
  switch (attrs) {
    case "any":
      return true;
    case "read-write":
      return state.readOnly === undefined ? undefined : !state.readOnly;
    case "read-only":
      return state.readOnly;
    case "primary":
      return state.standby === undefined ? undefined : !state.standby;
    case "standby":
    case "prefer-standby":
      return state.standby;
  }
}

/** What a connection found on a host of the wrong role, for messages. */
function describeState(state: ServerState): string {
  const role = state.standby === undefined ? "role unknown" : state.standby ? "standby" : "primary";
  return state.readOnly && !state.standby ? `${role}, read-only` : role;
}

/** The hosts of one pool: the pool's `create` ({@link HostList.open}), and what they look like. */
export class HostList {
  readonly #hosts: Host[];
  readonly #spec: ConnectionSpec;
  readonly #attrs: TargetSessionAttrs;
  readonly #random: boolean;
  readonly #credentials: CredentialsSupplier;
  /** Whether the new connection asks for the server's role (not needed for `any`). */
  readonly #askRole: boolean;
  readonly #emit: (event: HostEvent) => void;
  readonly #retireAll: () => void;
  readonly #shutdown = new AbortController();

  /**
   * `emit` gets host events; `retireAll` retires every pooled connection (`pool.invalidate()`):
   * called when a connection logged in with credentials newer than theirs, and, with
   * `prefer-standby`, when a standby is back while connections use a primary.
   */
  constructor(
    spec: ConnectionSpec,
    hosts: HostsSpec,
    emit: (event: HostEvent) => void,
    retireAll: () => void,
  ) {
    this.#spec = spec;
    this.#hosts = hosts.addresses.map((address) => new Host(address));
    this.#attrs = hosts.targetSessionAttrs;
    this.#random = hosts.loadBalanceHosts === "random";
    this.#credentials = new CredentialsSupplier(hosts.credentials);
    this.#askRole = this.#attrs !== "any";
    this.#emit = emit;
    this.#retireAll = retireAll;
    const writes = this.#attrs === "read-write" || this.#attrs === "primary";
    for (const host of this.#hosts) {
      host.watch = {
        writes,
        retire: this.#attrs === "any" ? undefined : (conn) => this.#retire(conn, host),
        changed: (conn) => this.#saw(host, conn.server),
      };
    }
  }

  /**
   * Opens a connection to the first host (in order, or random) that is up and has the role
   * asked for; hosts whose last seen role matches are tried first. Rejects with
   * {@link NoEligibleHostError} naming what each host was when none fits.
   */
  async #openOnce(signal: AbortSignal): Promise<{ conn: PgConnection; host: Host; login: Login }> {
    const login = await this.#credentials.next(signal);
    const seen: { host: string; seen: string }[] = [];
    let lastError: unknown;
    /** `prefer-standby`: the first other connection, used if no standby answers. */
    let fallback: { conn: PgConnection; host: Host } | undefined;
    for (const host of this.#candidates()) {
      let conn: PgConnection;
      try {
        conn = await this.#connect(host, login, signal);
      } catch (error) {
        if (signal.aborted) {
          await fallback?.conn.close();
          throw error;
        }
        if (this.#hosts.length === 1) throw error; // as without a host list
        lastError = error;
        seen.push({ host: host.label, seen: reasonOf(error) });
        continue;
      }
      const fits = accepts(this.#attrs, conn.server);
      if (fits === true) {
        await fallback?.conn.close();
        return { conn, host, login };
      }
      if (this.#attrs === "prefer-standby" && fallback === undefined) {
        fallback = { conn, host };
        continue;
      }
      seen.push({ host: host.label, seen: describeState(conn.server) });
      await conn.close();
    }
    if (fallback !== undefined) return { ...fallback, login };
    for (const host of this.#hosts) {
      if (!seen.some((s) => s.host === host.label)) {
        seen.push({ host: host.label, seen: `down (${host.lastError ?? "not answering"})` });
      }
    }
    throw new NoEligibleHostError(this.#attrs, seen, { cause: lastError });
  }

  /** A connection is destroyed: it no longer counts on its host. */
  forget(conn: PgConnection): void {
    const host = this.#hosts.find((h) => h.label === conn.host);
    if (host !== undefined && host.connections > 0) host.connections--;
  }

  /** The hosts as last seen. */
  stats(): HostStats[] {
    return this.#hosts.map((host) => {
      const stats: HostStats = {
        host: host.label,
        role: host.role,
        state: host.up ? "up" : "down",
        connections: host.connections,
      };
      if (host.lastError !== undefined) stats.lastError = host.lastError;
      return stats;
    });
  }

  /** Stops probing; resolves when no probe is under way. */
  async close(): Promise<void> {
    this.#shutdown.abort(new Error("the pool closed"));
    for (const host of this.#hosts) clearTimeout(host.probeTimer);
    await Promise.all(this.#hosts.map((host) => host.probing));
  }

  /** Up hosts in order (or shuffled), those whose last seen role matches first. */
  #candidates(): Host[] {
    let hosts = this.#hosts.length > 1 ? this.#hosts.filter((h) => h.up) : [...this.#hosts];
    if (this.#random) hosts = shuffled(hosts);
    if (!this.#askRole) return hosts;
    const rank = (h: Host) => {
      const fits = accepts(this.#attrs, h.server);
      return fits === true ? 0 : fits === undefined ? 1 : 2;
    };
    return hosts.map((host, i) => ({ host, key: rank(host) * 1_000 + i }))
      .sort((a, b) => a.key - b.key).map((x) => x.host);
  }

  /** One connect to `host`; its breaker and role as last seen follow the outcome. */
  async #connect(host: Host, login: Login, signal: AbortSignal): Promise<PgConnection> {
    const { driver, target } = this.#spec;
    const user = login.credentials?.user;
    const spec: ConnectionSpec = {
      ...this.#spec,
      driver: {
        ...driver,
        ...(driver.path === undefined ? { host: host.address.host, port: host.address.port } : {}),
        ...(user === undefined ? {} : { user, username: user }),
        ...(login.credentials === undefined ? {} : { password: login.credentials.password }),
      },
      target: {
        ...target,
        host: host.address.host,
        port: host.address.port,
        user: user ?? target.user,
      },
    };
    let conn: PgConnection;
    try {
      conn = await PgConnection.open(spec, signal, this.#askRole);
    } catch (error) {
      if (!signal.aborted) this.#failed(host, error);
      throw error;
    }
    const wasStandby = host.server.standby === true;
    const cameBack = this.#succeeded(host);
    this.#saw(host, conn.server);
    if ((cameBack || !wasStandby) && this.#standbyBack(host)) this.#retireAll();
    return conn;
  }

  /**
   * Opens a connection (`#openOnce`); one that logged in with credentials older
   * than another connection already did (it was opening when they changed) is closed, and the
   * opening runs again with the new ones, so that old and new do not mix.
   */
  async open(signal: AbortSignal): Promise<PgConnection> {
    for (;;) {
      const opened = await this.#openOnce(signal);
      if (opened.login.generation >= this.#credentials.accepted) return this.#adopt(opened);
      await opened.conn.close();
    }
  }

  /** `conn` is the pool's now: watched for role changes, counted on its host. */
  #adopt({ conn, host, login }: { conn: PgConnection; host: Host; login: Login }): PgConnection {
    host.connections++;
    conn.watch = host.watch;
    conn.roleEpoch = host.epoch;
    if (this.#credentials.loggedIn(login)) this.#retireAll();
    return conn;
  }

  #failed(host: Host, error: unknown): void {
    host.lastError = reasonOf(error);
    if (isPermanentConnectError(error)) return; // the server answers: up, the login is wrong
    const wasUp = host.up;
    host.breaker.recordFailure(error, performance.now(), true, false);
    if (wasUp) this.#emit({ type: "host-down", host: host.label, error: host.lastError });
    this.#scheduleProbe(host);
  }

  /** Returns true when `host` was down. */
  #succeeded(host: Host): boolean {
    host.lastError = undefined;
    if (!host.breaker.recordSuccess()) return false;
    this.#emit({ type: "host-up", host: host.label });
    return true;
  }

  /**
   * `prefer-standby`: `host` just came back (or turned out) a standby while pooled connections
   * use a primary. Retiring them all at once (idle ones too, which a check at borrow would not
   * reach) brings the reads back to the standbys.
   */
  #standbyBack(host: Host): boolean {
    return this.#attrs === "prefer-standby" && host.server.standby === true &&
      this.#hosts.some((h) => h.server.standby === false && h.connections > 0);
  }

  /**
   * Records what a connection to `host` reported. A change of standby to primary (or back) is
   * the server's: it bumps the host's epoch, so that its other connections are checked again.
   * Read-only is noted for the order of the next connects only: a session can change it for
   * itself (`SET default_transaction_read_only`), so only that connection answers for it.
   */
  #saw(host: Host, state: ServerState): void {
    const before = host.role;
    if (state.standby !== undefined) host.server.standby = state.standby;
    if (state.readOnly !== undefined) host.server.readOnly = state.readOnly;
    if (host.role === before) return;
    host.epoch++;
    if (before !== "unknown") {
      this.#emit({ type: "role-changed", host: host.label, from: before, to: host.role });
    }
  }

  /** Why `conn` on `host` must go: its server no longer fits, or a standby is back. */
  #retire(conn: PgConnection, host: Host): PostgresConnectionError | undefined {
    if (conn.roleEpoch !== host.epoch) {
      conn.roleEpoch = host.epoch;
      if (host.server.standby !== undefined) conn.server.standby = host.server.standby;
      if (host.server.readOnly !== undefined) conn.server.readOnly = host.server.readOnly;
    }
    if (accepts(this.#attrs, conn.server) === false && this.#attrs !== "prefer-standby") {
      return roleChangedError(conn.id, conn.host, describeState(conn.server));
    }
    if (this.#fallbackReplaceable(host)) {
      return roleChangedError(conn.id, conn.host, "a primary while a standby is up");
    }
    return undefined;
  }

  /** `prefer-standby`: a connection on a non-standby, while a host up is a standby. */
  #fallbackReplaceable(host: Host): boolean {
    if (this.#attrs !== "prefer-standby" || host.server.standby !== false) return false;
    // Only a standby that lets us in: one refusing the login (still "up") would retire the
    // pool's connections at every borrow for nothing.
    return this.#hosts.some((h) => h.up && h.lastError === undefined && h.server.standby === true);
  }

  /** While `host` is down (and others exist), one probe per {@link PROBE_INTERVAL_MS}. */
  #scheduleProbe(host: Host): void {
    if (this.#hosts.length === 1 || this.#shutdown.signal.aborted) return;
    if (host.probeTimer !== undefined || host.probing !== undefined) return;
    const delay = host.breaker.retryAfterMs(performance.now());
    host.probeTimer = setTimeout(() => {
      host.probeTimer = undefined;
      if (!host.breaker.allowCreate(performance.now())) return this.#scheduleProbe(host);
      host.probing = this.#probe(host).finally(() => {
        host.probing = undefined;
        if (!host.up) this.#scheduleProbe(host);
      });
    }, delay);
    Deno.unrefTimer(host.probeTimer);
  }

  /** Connects to `host` and closes again; `#connect` records the outcome. */
  async #probe(host: Host): Promise<void> {
    try {
      const login = await this.#credentials.next(this.#shutdown.signal);
      const conn = await this.#connect(host, login, this.#shutdown.signal);
      await conn.close();
    } catch (error) {
      if (host.breaker.state === "half-open") {
        host.breaker.recordFailure(error, performance.now(), true, false);
      }
    }
  }
}

/** A short reason for a host's failure: the driver's message and code, never a password. */
function reasonOf(error: unknown): string {
  if (error instanceof PostgresConnectionError) {
    const cause = error.cause;
    const message = cause instanceof Error ? cause.message : error.message;
    return `${message} [${error.code}]`;
  }
  return error instanceof Error ? error.message : String(error);
}

function shuffled<T>(items: T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

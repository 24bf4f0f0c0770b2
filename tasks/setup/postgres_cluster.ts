/**
 * A throwaway PostgreSQL primary with streaming standbys, for failover tests and demos: `initdb`
 * a primary, `pg_basebackup -R` each standby from it, every server on a free port in one private
 * temp folder, run as user `postgres` when we are root, stopped and deleted afterwards (on
 * dispose, on SIGINT/SIGTERM/SIGHUP, at exit, and when a step of the start fails).
 *
 * ```ts
 * await using cluster = await startCluster({ standbys: 1, synchronous: true });
 * const [primary, standby] = cluster.servers;
 * cluster.url;                         // postgres://postgres:…@127.0.0.1:p1,127.0.0.1:p2/postgres
 * await primary.stop("immediate");     // a crash
 * await cluster.promote(standby);      // pg_ctl promote -w: standby is the primary now
 * await cluster.rejoin(primary);       // the old primary, a standby of the new one
 * (await primary.log()).match(/connection authorized/g);     // log_connections = on
 * await standby.activity("my-app");    // its pg_stat_activity rows for an application_name
 * ```
 *
 * A server rejoins as a fresh `pg_basebackup` of the current primary rather than through
 * `pg_rewind`: a copy of a small test cluster takes well under a second here and cannot fail on
 * WAL the new primary no longer has.
 *
 * @module
 */
import type postgres from "postgres";
import { freePort, onInterrupt } from "./interrupt.ts";
import {
  adminClient,
  findBinaries,
  initCluster,
  type Owner,
  pgCtl,
  postgresUser,
  run,
  stopSync,
  sweepStaleClusters,
} from "./postgres.ts";

/** Options of {@link startCluster}. */
export interface StartClusterOptions {
  /** How many streaming standbys. Default 1. */
  standbys?: number;
  /**
   * Synchronous replication: the primary waits for a standby's flush before it acknowledges a
   * commit (`synchronous_standby_names = '*'`, set on the first primary only). Default false.
   */
  synchronous?: boolean;
  /** Extra `postgresql.conf` settings for every server. */
  settings?: Record<string, string | number>;
  /** Progress lines ("primary started on 127.0.0.1:5433"). Default: silent. */
  log?: (line: string) => void;
}

/** What a server was last made into by the cluster: promotion and rejoin change it. */
export type ServerRole = "primary" | "standby";

/** One server of a {@link Cluster}. */
export interface ClusterServer {
  /** `"primary"` for the first primary, `"standby1"`, `"standby2"`... for the others. */
  readonly name: string;
  /** Its TCP port on 127.0.0.1. */
  readonly port: number;
  /** `"127.0.0.1:<port>"`, as a host list names it. */
  readonly host: string;
  /** Its own connection URL as the superuser (password included: never print it). */
  readonly url: string;
  /** The role the cluster last gave it (it says nothing about whether it runs). */
  readonly role: ServerRole;
  /** Whether it runs (as far as the cluster started and stopped it). */
  readonly running: boolean;
  /** A postgres.js client (max 2, application_name `poolkit-admin`) as the superuser. */
  readonly admin: postgres.Sql;
  /** Stops it: `"fast"` (clean) or `"immediate"` (as a crash: no shutdown checkpoint). */
  stop(mode?: "fast" | "immediate"): Promise<void>;
  /** Starts it again with the role it had. */
  start(): Promise<void>;
  /** Its server log, every start of it (`log_connections` is on). */
  log(): Promise<string>;
  /**
   * How many connections of `applicationName` it has let in so far, every start counted
   * (its log's `connection authorized` lines).
   */
  loggedConnections(applicationName: string): Promise<number>;
  /** Its `pg_stat_activity` rows, only those of `applicationName` when given. */
  activity(applicationName?: string): Promise<Record<string, unknown>[]>;
  /** Whether it is in recovery right now (`pg_is_in_recovery()`), i.e. a standby. */
  inRecovery(): Promise<boolean>;
}

/** A running primary with standbys. Dispose of it (or call `stop()`) when done. */
export interface Cluster extends AsyncDisposable {
  /** Every server, the first primary first. */
  readonly servers: readonly ClusterServer[];
  /** The current primary: the first one, or the last one promoted. */
  readonly primary: ClusterServer;
  /** The servers whose role is standby. */
  readonly standbys: readonly ClusterServer[];
  /** `postgres://postgres:…@h1:p1,h2:p2/postgres`: every server, in order (password included). */
  readonly url: string;
  /** {@link Cluster.url} with the password masked. */
  readonly display: string;
  /** The superuser's password (the same on every server: the standbys are copies). */
  readonly password: string;
  /** The private temp folder holding every server (deleted by `stop()`). */
  readonly folder: string;
  /** `pg_ctl promote -w` on `standby`, which becomes {@link Cluster.primary}. */
  promote(standby: ClusterServer): Promise<void>;
  /**
   * Makes `server` (an old primary, say) a streaming standby of the current primary: stops it if
   * it runs, replaces its data with a fresh `pg_basebackup`, starts it and waits until it streams.
   */
  rejoin(server: ClusterServer): Promise<void>;
  /** Waits until every running standby has replayed all WAL the primary has written so far. */
  replicated(timeoutMs?: number): Promise<void>;
  /** Stops every server and deletes the folder. Idempotent. */
  stop(): Promise<void>;
}

const WAIT_MS = 30_000;

/**
 * Starts a primary and `options.standbys` streaming standbys (see the module doc). Every failure
 * on the way stops what was started and deletes the folder before it is thrown.
 */
export async function startCluster(options: StartClusterOptions = {}): Promise<Cluster> {
  const standbyCount = options.standbys ?? 1;
  if (!Number.isInteger(standbyCount) || standbyCount < 0) {
    throw new TypeError(`startCluster: standbys must be a whole number >= 0, got ${standbyCount}`);
  }
  const log = options.log ?? (() => {});
  const bin = await findBinaries();
  const owner = await postgresUser("the throwaway cluster");
  await sweepStaleClusters();
  const folder = await Deno.makeTempDir({ prefix: "poolkit-pgcluster-" });
  if (owner) await Deno.chown(folder, owner.uid, owner.gid);
  await Deno.chmod(folder, 0o700);
  const password = crypto.randomUUID().replaceAll("-", "");
  const servers: Server[] = [];
  let stopping: Promise<void> | undefined;
  const stop = () =>
    stopping ??= (async () => {
      for (const server of servers) await server.stop("immediate").catch(() => {});
      await Deno.remove(folder, { recursive: true }).catch(() => {});
      release();
      log("cluster stopped, its folder removed");
    })();
  const release = onInterrupt(stop, () => {
    for (const server of servers) stopSync(bin, owner, server.data, server.folder);
    try {
      Deno.removeSync(folder, { recursive: true });
    } catch { /* already gone */ }
  });
  const context: Context = { bin, owner, folder, password, log };
  const cluster = new ClusterHandle(context, servers, stop);
  try {
    const primary = new Server(context, "primary", "primary");
    servers.push(primary);
    log("initdb...");
    await primary.makeFolder();
    await initCluster(bin, owner, primary.folder, password, {
      ...clusterSettings,
      ...(options.synchronous ? { synchronous_standby_names: "'*'" } : {}),
      ...options.settings,
      ...primary.ownSettings(),
    });
    await primary.start();
    for (let i = 1; i <= standbyCount; i++) {
      const standby = new Server(context, `standby${i}`, "standby");
      servers.push(standby);
      await standby.makeFolder();
      await cluster.clone(standby);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return cluster;
}

/**
 * Every server's settings. WAL is kept for a standby that falls behind; full_page_writes stays on
 * (crash recovery after `stop("immediate")` needs it).
 */
const clusterSettings: Record<string, string | number> = {
  full_page_writes: "on",
  wal_keep_size: "'256MB'",
  log_connections: "on",
  log_disconnections: "on",
  log_line_prefix: "'%m [%p] %a '",
};

/** What every server of one cluster shares. */
interface Context {
  bin: string;
  owner: Owner | null;
  folder: string;
  password: string;
  log: (line: string) => void;
}

class Server implements ClusterServer {
  readonly port = freePort();
  readonly host: string;
  readonly url: string;
  readonly folder: string;
  readonly data: string;
  readonly logFile: string;
  running = false;
  #admin: postgres.Sql | undefined;

  constructor(readonly context: Context, readonly name: string, public role: ServerRole) {
    this.host = `127.0.0.1:${this.port}`;
    this.url = `postgres://postgres:${context.password}@${this.host}/postgres`;
    this.folder = `${context.folder}/${name}`;
    this.data = `${this.folder}/data`;
    this.logFile = `${this.folder}/server.log`;
  }

  /** What only this server has: its port and its socket folder. */
  ownSettings(): Record<string, string | number> {
    return { port: this.port, unix_socket_directories: `'${this.folder}'` };
  }

  /** Its folder (the data folder goes into it), owned by the user the server runs as. */
  async makeFolder(): Promise<void> {
    await Deno.mkdir(this.folder, { mode: 0o700 });
    const { owner } = this.context;
    if (owner) await Deno.chown(this.folder, owner.uid, owner.gid);
  }

  get admin(): postgres.Sql {
    return this.#admin ??= adminClient(this.url);
  }

  async start(): Promise<void> {
    await pgCtl(this.context.bin, this.context.owner, this.data, this.logFile, ["start"]);
    this.running = true;
    this.context.log(`${this.name} (${this.role}) started on ${this.host}`);
  }

  async stop(mode: "fast" | "immediate" = "fast"): Promise<void> {
    // The admin client's connections die with the server: a new client after the next start.
    const admin = this.#admin;
    this.#admin = undefined;
    await admin?.end({ timeout: 0 }).catch(() => {});
    if (!this.running) return;
    await pgCtl(this.context.bin, this.context.owner, this.data, this.logFile, [
      "stop",
      "-m",
      mode,
    ]);
    this.running = false;
    this.context.log(`${this.name} stopped (${mode})`);
  }

  async log(): Promise<string> {
    return await Deno.readTextFile(this.logFile).catch(() => "");
  }

  async loggedConnections(applicationName: string): Promise<number> {
    const marker = `connection authorized: `;
    const name = `application_name=${applicationName}`;
    return (await this.log()).split("\n")
      .filter((line) => line.includes(marker) && (line.endsWith(name) || line.includes(`${name} `)))
      .length;
  }

  async activity(applicationName?: string): Promise<Record<string, unknown>[]> {
    const rows = applicationName === undefined
      ? await this.admin`select * from pg_stat_activity where backend_type = 'client backend'`
      : await this
        .admin`select * from pg_stat_activity where application_name = ${applicationName}`;
    return [...rows];
  }

  async inRecovery(): Promise<boolean> {
    const [row] = await this.admin<{ r: boolean }[]>`select pg_is_in_recovery() as r`;
    return row.r;
  }
}

class ClusterHandle implements Cluster {
  /** Set by promote(); until then the first server. */
  #promoted: Server | undefined;

  constructor(
    readonly context: Context,
    readonly servers: Server[],
    readonly stop: () => Promise<void>,
  ) {}

  get primary(): Server {
    return this.#promoted ?? this.servers[0];
  }

  get standbys(): Server[] {
    return this.servers.filter((s) => s.role === "standby");
  }

  get url(): string {
    const hosts = this.servers.map((s) => s.host).join(",");
    return `postgres://postgres:${this.context.password}@${hosts}/postgres`;
  }

  get display(): string {
    return this.url.replace(this.context.password, "***");
  }

  get password(): string {
    return this.context.password;
  }

  get folder(): string {
    return this.context.folder;
  }

  async promote(standby: ClusterServer): Promise<void> {
    const server = this.#own(standby);
    if (server.role !== "standby" || !server.running) {
      throw new Error(`promote: ${server.name} is not a running standby`);
    }
    const { bin, owner } = this.context;
    await pgCtl(bin, owner, server.data, server.logFile, ["promote"]);
    server.role = "primary";
    this.#promoted = server;
    this.context.log(`${server.name} promoted: the primary now`);
  }

  async rejoin(server: ClusterServer): Promise<void> {
    const own = this.#own(server);
    if (own === this.primary) throw new Error(`rejoin: ${own.name} is the current primary`);
    await own.stop("fast");
    await Deno.remove(own.data, { recursive: true }).catch(() => {});
    own.role = "standby";
    await this.clone(own);
  }

  /** `pg_basebackup -R` of the current primary into `standby`'s empty data folder; starts it. */
  async clone(standby: Server): Promise<void> {
    const { bin, owner, log } = this.context;
    const primary = this.primary;
    if (!primary.running) throw new Error(`cannot copy ${primary.name}: it is not running`);
    log(`pg_basebackup ${primary.name} -> ${standby.name}...`);
    // Over the primary's socket (trusted locally): no password in the standby's configuration.
    const from = `host=${primary.folder} port=${primary.port} user=postgres ` +
      `application_name=${standby.name}`;
    await run(owner, `${bin}/pg_basebackup`, [
      ...["-d", from, "-D", standby.data, "-R", "-X", "stream", "-c", "fast", "--no-sync"],
    ]);
    // The copy carries the primary's postgresql.conf: this server's own lines come last, and a
    // standby waits for no standby of its own once it is promoted.
    const own = { ...standby.ownSettings(), synchronous_standby_names: "''" };
    const conf = Object.entries(own).map(([k, v]) => `${k} = ${v}`).join("\n");
    await Deno.writeTextFile(`${standby.data}/postgresql.conf`, `\n${conf}\n`, { append: true });
    await standby.start();
    await this.#streaming(standby);
  }

  async replicated(timeoutMs = WAIT_MS): Promise<void> {
    const [{ lsn }] = await this.primary.admin<{ lsn: string }[]>`
      select pg_current_wal_lsn()::text as lsn`;
    for (const standby of this.standbys.filter((s) => s.running)) {
      await waitFor(`${standby.name} to replay up to ${lsn}`, timeoutMs, async () => {
        const [row] = await standby.admin<{ done: boolean }[]>`
          select pg_last_wal_replay_lsn() >= ${lsn}::pg_lsn as done`;
        return row.done;
      });
    }
  }

  /**
   * Waits until the primary lists `standby` as streaming, and, where the primary has
   * `synchronous_standby_names`, as synchronous: it is `async` until its first flush report.
   */
  async #streaming(standby: Server): Promise<void> {
    const primary = this.primary;
    await waitFor(`${standby.name} to stream from ${primary.name}`, WAIT_MS, async () => {
      const rows = await primary.admin<{ state: string; sync_state: string; names: string }[]>`
        select state, sync_state, current_setting('synchronous_standby_names') as names
        from pg_stat_replication where application_name = ${standby.name}`;
      return rows.some((r) =>
        r.state === "streaming" && (r.names === "" || ["sync", "quorum"].includes(r.sync_state))
      );
    });
  }

  #own(server: ClusterServer): Server {
    const own = this.servers.find((s) => s === server);
    if (!own) throw new Error(`${server.name} is not a server of this cluster`);
    return own;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

/** Polls `done` every 50 ms until it is true; an error naming `what` after `timeoutMs`. */
async function waitFor(what: string, timeoutMs: number, done: () => Promise<boolean>) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await done()) return;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A real PgBouncer (Debian package `pgbouncer`) in front of a given PostgreSQL, for tests and
 * benchmarks: transaction pooling by default, a free port, a temp folder, SCRAM authentication
 * with the target's own user and password, run as user `postgres` when we are root (PgBouncer
 * refuses root). Stopped and deleted afterwards, also on SIGINT/SIGTERM.
 *
 * ```ts
 * await using db = await startDatabase();
 * await using bouncer = await startPgBouncer(db);
 * const sql = postgres(bouncer.url, { prepare: false }); // transaction mode: no prepared statements
 * console.log(await bouncer.show("pools"));              // the admin console's SHOW POOLS
 * ```
 *
 * @module
 */
import postgres from "postgres";
import { freePort, onInterrupt } from "./interrupt.ts";
import { type Owner, postgresUser, redactUrl } from "./postgres.ts";

/** Where the PgBouncer binary is looked for; `PGBOUNCER` wins. */
export const PGBOUNCER_BINARIES: readonly string[] = [
  "/usr/sbin/pgbouncer",
  "/usr/bin/pgbouncer",
  "/usr/local/bin/pgbouncer",
];

/** A running PgBouncer. Dispose of it (or call `stop()`) when done. */
export interface PgBouncer extends AsyncDisposable {
  /** The target's URL with PgBouncer's host and port (password included: never print it). */
  readonly url: string;
  /** {@link PgBouncer.url} with the password masked. */
  readonly display: string;
  /** PgBouncer's TCP port on 127.0.0.1. */
  readonly port: number;
  /** The pool mode it runs in. */
  readonly poolMode: "transaction" | "session" | "statement";
  /** {@link PgBouncer.url} with another user and/or password (e.g. a wrong one, for tests). */
  urlWith(change: { user?: string; password?: string }): string;
  /** Runs `SHOW <what>` on the admin console (e.g. `"pools"`, `"clients"`, `"servers"`). */
  show(what: string): Promise<Record<string, unknown>[]>;
  /** Stops PgBouncer and deletes its folder. Idempotent. */
  stop(): Promise<void>;
}

/** Options of {@link startPgBouncer}. */
export interface StartPgBouncerOptions {
  /** Default `"transaction"`, the mode that lets many app processes share few server connections. */
  poolMode?: "transaction" | "session" | "statement";
  /** Server connections per user/database pair. Default 20. */
  poolSize?: number;
  /** Client connections accepted. Default 1000. */
  maxClientConn?: number;
  /** Extra `[pgbouncer]` settings, e.g. `{ query_wait_timeout: 2 }`. */
  settings?: Record<string, string | number>;
}

/**
 * Starts PgBouncer in front of `target` (anything with a `url`, e.g. a `Database`) and waits until
 * it accepts connections.
 */
export async function startPgBouncer(
  target: { url: string },
  options: StartPgBouncerOptions = {},
): Promise<PgBouncer> {
  const binary = await findPgBouncer();
  const poolMode = options.poolMode ?? "transaction";
  const port = freePort();
  const owner = await postgresUser("PgBouncer");
  const dir = await Deno.makeTempDir({ prefix: "poolkit-pgbouncer-" });
  // The folder holds the password (userlist.txt): from here on, every way out deletes it.
  let child: Deno.ChildProcess | undefined;
  let stopping: Promise<void> | undefined;
  const stop = () =>
    stopping ??= (async () => {
      try {
        child?.kill("SIGINT"); // PgBouncer's "safe shutdown"
      } catch { /* already exited */ }
      await child?.status;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      release();
    })();
  const release = onInterrupt(stop, () => {
    try {
      child?.kill("SIGKILL");
    } catch { /* gone */ }
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch { /* gone */ }
  });
  try {
    await writeConfig(dir, target.url, { ...options, poolMode, port }, owner);
    // Started directly under the postgres user's ids (not through runuser, which does not pass
    // our SIGINT on), so that it is our own child and stop() can end it. Its working directory is
    // its own folder: the caller's may be private (a clone in a 0700 folder, run as root).
    child = new Deno.Command(binary, {
      args: [`${dir}/pgbouncer.ini`],
      cwd: dir,
      ...(owner ?? {}),
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    await waitForPort(port, child, dir);
  } catch (error) {
    await stop();
    throw error;
  }
  return runningPgBouncer(target.url, port, poolMode, stop);
}

/** Writes `userlist.txt` (mode 0600) and `pgbouncer.ini` into `dir`, owned by `owner`. */
async function writeConfig(
  dir: string,
  targetUrl: string,
  options: StartPgBouncerOptions & { poolMode: string; port: number },
  owner: Owner | null,
): Promise<void> {
  const upstream = new URL(targetUrl);
  const user = decodeURIComponent(upstream.username);
  const password = decodeURIComponent(upstream.password);
  const quote = (s: string) => `"${s.replaceAll('"', '""')}"`;
  await Deno.writeTextFile(`${dir}/userlist.txt`, `${quote(user)} ${quote(password)}\n`, {
    mode: 0o600,
  });
  await Deno.writeTextFile(
    `${dir}/pgbouncer.ini`,
    [
      "[databases]",
      `* = host=${upstream.hostname} port=${upstream.port || 5432}`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${options.port}`,
      `unix_socket_dir = ${dir}`,
      "auth_type = scram-sha-256",
      `auth_file = ${dir}/userlist.txt`,
      `admin_users = ${user}`,
      `pool_mode = ${options.poolMode}`,
      `default_pool_size = ${options.poolSize ?? 20}`,
      `max_client_conn = ${options.maxClientConn ?? 1000}`,
      ...Object.entries(options.settings ?? {}).map(([k, v]) => `${k} = ${v}`),
      `logfile = ${dir}/pgbouncer.log`,
      // Drivers send this one; PgBouncer would refuse the connection otherwise.
      "ignore_startup_parameters = extra_float_digits",
      "",
    ].join("\n"),
  );
  if (owner) {
    for (const f of ["", "/userlist.txt", "/pgbouncer.ini"]) {
      await Deno.chown(dir + f, owner.uid, owner.gid);
    }
  }
}

/** The handle of a PgBouncer listening on `port`. */
function runningPgBouncer(
  targetUrl: string,
  port: number,
  poolMode: PgBouncer["poolMode"],
  stop: () => Promise<void>,
): PgBouncer {
  const url = new URL(targetUrl);
  url.hostname = "127.0.0.1";
  url.port = String(port);
  const adminUrl = new URL(url);
  adminUrl.pathname = "/pgbouncer";
  return {
    url: url.toString(),
    display: redactUrl(url.toString()),
    port,
    poolMode,
    urlWith(change) {
      const u = new URL(url);
      if (change.user !== undefined) u.username = encodeURIComponent(change.user);
      if (change.password !== undefined) u.password = encodeURIComponent(change.password);
      return u.toString();
    },
    async show(what) {
      if (!/^[a-z_]+$/i.test(what)) throw new TypeError(`show(): not a SHOW command: ${what}`);
      // The admin console speaks only the simple query protocol and has no pg_catalog.
      const admin = postgres(adminUrl.toString(), { max: 1, fetch_types: false, prepare: false });
      try {
        return [...await admin.unsafe(`SHOW ${what.toUpperCase()}`)];
      } finally {
        await admin.end({ timeout: 1 });
      }
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/** Whether PgBouncer is installed here (or `PGBOUNCER` names it). */
export async function hasPgBouncer(): Promise<boolean> {
  return await findPgBouncer().then(() => true, () => false);
}

async function findPgBouncer(): Promise<string> {
  const fromEnv = Deno.env.get("PGBOUNCER");
  const candidates = fromEnv ? [fromEnv, ...PGBOUNCER_BINARIES] : PGBOUNCER_BINARIES;
  for (const path of candidates) {
    try {
      await Deno.stat(path);
      return path;
    } catch { /* next */ }
  }
  throw new Error(
    `PgBouncer not found (looked for ${candidates.join(", ")}). Install it ` +
      "(Debian/Ubuntu: apt-get install pgbouncer) or set PGBOUNCER to its path.",
  );
}

async function waitForPort(port: number, child: Deno.ChildProcess, dir: string): Promise<void> {
  let exited = false;
  child.status.then(() => exited = true);
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && !exited) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const log = await Deno.readTextFile(`${dir}/pgbouncer.log`).catch(() => "(no log)");
  throw new Error(
    `PgBouncer did not start on port ${port}${exited ? " (it exited)" : " within 10 s"}:\n` +
      log.split("\n").slice(-10).join("\n"),
  );
}

/**
 * A real PostgreSQL for tests, demos and benchmarks, with nothing started by hand.
 *
 * - With `DATABASE_URL` set, that server is used, and everything a caller creates goes into a
 *   schema with a unique name ({@link Database.table}), dropped again by {@link Database.stop}.
 * - Without it, a throwaway PostgreSQL cluster is made from the installed binaries
 *   (`initdb` + `pg_ctl`, a free port, a temp folder, run as user `postgres` when we are root)
 *   and stopped and deleted afterwards: on `stop()`/`await using`, on SIGINT/SIGTERM/SIGHUP, and
 *   (immediate shutdown) when the process exits without stopping it.
 *
 * ```ts
 * await using db = await startDatabase();
 * const sql = postgres(db.url);            // the password is in db.url: never print it
 * console.log(`using ${db.display}`);      // the same URL without the password
 * await db.admin`select 1`;                // SQL as the superuser (DATABASE_URL's user)
 * await db.restart();                      // pg_ctl restart -m fast (throwaway only)
 * ```
 *
 * @module
 */
import postgres from "postgres";
import { freePort, onInterrupt } from "./interrupt.ts";

export { freePort, onInterrupt } from "./interrupt.ts";

/**
 * Where the PostgreSQL server binaries are looked for: every version Debian/Ubuntu installed under
 * `/usr/lib/postgresql`, newest first (`PG_BINDIR` wins over all of them).
 */
export function postgresBinaryDirs(): string[] {
  const versions: number[] = [];
  try {
    for (const entry of Deno.readDirSync("/usr/lib/postgresql")) {
      if (/^\d+$/.test(entry.name)) versions.push(Number(entry.name));
    }
  } catch { /* not installed */ }
  const dirs = versions.sort((a, b) => b - a).map((v) => `/usr/lib/postgresql/${v}/bin`);
  return dirs.length > 0 ? dirs : ["/usr/lib/postgresql/<version>/bin"];
}

/** A running PostgreSQL to connect to. Dispose of it (or call `stop()`) when done. */
export interface Database extends AsyncDisposable {
  /** `"throwaway"`: our own temporary cluster. `"external"`: the server named by `DATABASE_URL`. */
  readonly kind: "throwaway" | "external";
  /** Connection URL, password included: hand it to a driver, never print it. */
  readonly url: string;
  /** The same URL with the password masked, for logs and output. */
  readonly display: string;
  /** Host, port, user and database name of {@link Database.url}. */
  readonly host: string;
  /** The server's TCP port. */
  readonly port: number;
  /** The role {@link Database.url} logs in as. */
  readonly user: string;
  /** The role's password (empty when the server does not need one). */
  readonly password: string;
  /** The database name. */
  readonly database: string;
  /** External mode: the unique schema everything goes into; throwaway: `null` (public). */
  readonly schema: string | null;
  /** The throwaway cluster's temp folder (deleted by `stop()`); `null` in external mode. */
  readonly folder: string | null;
  /** Whether {@link Database.restart} works (throwaway clusters only). */
  readonly canRestart: boolean;
  /** A postgres.js client (max 2 connections) as the superuser, made on first use. */
  readonly admin: postgres.Sql;
  /** The name to create table `name` under: `name` itself, or `schema.name` in external mode. */
  table(name: string): string;
  /** {@link Database.url} with another user and/or password (e.g. a wrong one, for tests). */
  urlWith(change: { user?: string; password?: string }): string;
  /** Restarts the server (`pg_ctl restart -m fast`), cutting every connection. */
  restart(): Promise<void>;
  /** Stops and deletes the cluster (external: drops the schema). Idempotent. */
  stop(): Promise<void>;
}

/** Options of {@link startDatabase}. */
export interface StartDatabaseOptions {
  /** Ignore `DATABASE_URL` and always make a throwaway cluster. Default false. */
  throwaway?: boolean;
  /** Extra `postgresql.conf` settings for a throwaway cluster. */
  settings?: Record<string, string | number>;
  /** Progress lines ("initdb...", "started on port 5433"). Default: silent. */
  log?: (line: string) => void;
  /** Where to look for `initdb` and `pg_ctl`. Default: `PG_BINDIR`, then /usr/lib/postgresql/N/bin, newest first. */
  binDirs?: string[];
}

/** Thrown when no PostgreSQL can be had; the message names both ways out. */
export class NoDatabaseError extends Error {
  /** @param detail what was looked for */
  constructor(detail: string) {
    super(
      `no PostgreSQL to run against: DATABASE_URL is not set and ${detail}. Either install the ` +
        `PostgreSQL server (Debian/Ubuntu: apt-get install postgresql) so a throwaway cluster can ` +
        `be started, or set DATABASE_URL=postgres://user:password@host:5432/db (for example after ` +
        `\`docker compose up -d\` with this repository's compose.yaml).`,
    );
    this.name = "NoDatabaseError";
  }
}

/**
 * Gives a PostgreSQL: `DATABASE_URL` if set (with a unique schema), otherwise a throwaway cluster.
 * Use with `await using`, or call `stop()` in a `finally`.
 */
export async function startDatabase(options: StartDatabaseOptions = {}): Promise<Database> {
  const external = options.throwaway ? undefined : Deno.env.get("DATABASE_URL");
  return external ? await useExternal(external) : await startThrowaway(options);
}

/** Masks the password of a connection URL, for anything a person or a log will read. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "<unparseable connection URL>";
  }
}

async function useExternal(url: string): Promise<Database> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // Not the URL's own error: that one would print the password.
    throw new TypeError(
      "DATABASE_URL is not a valid URL; expected postgres://user:password@host:5432/database",
    );
  }
  const schema = `poolkit_${Date.now().toString(36)}_${crypto.randomUUID().slice(0, 8)}`;
  const admin = adminClient(url);
  await admin.unsafe(`create schema "${schema}"`);
  // One stop, however many callers (dispose, a signal): they all wait for the same one. The
  // interrupt guard stays until the end, so an exit in the middle still cleans up.
  let stopping: Promise<void> | undefined;
  const stop = () =>
    stopping ??= (async () => {
      try {
        await admin.unsafe(`drop schema if exists "${schema}" cascade`);
      } finally {
        await admin.end({ timeout: 5 });
        release();
      }
    })();
  const release = onInterrupt(stop);
  return {
    kind: "external",
    url,
    display: redactUrl(url),
    host: parsed.hostname,
    port: Number(parsed.port || 5432),
    user: decodeURIComponent(parsed.username),
    password: decodeURIComponent(parsed.password),
    database: decodeURIComponent(parsed.pathname.slice(1)) || decodeURIComponent(parsed.username),
    schema,
    folder: null,
    canRestart: false,
    admin,
    table: (name) => `${schema}.${name}`,
    urlWith: (change) => changeUrl(url, change),
    restart: () =>
      Promise.reject(
        new Error("restart() needs a throwaway cluster; it cannot restart the DATABASE_URL server"),
      ),
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

async function startThrowaway(options: StartDatabaseOptions): Promise<Database> {
  const log = options.log ?? (() => {});
  const bin = await findBinaries(options.binDirs);
  const owner = await postgresUser("the throwaway cluster");
  await sweepStaleClusters();
  const dir = await Deno.makeTempDir({ prefix: "poolkit-pg-" });
  const data = `${dir}/data`;
  const logFile = `${dir}/server.log`;
  const password = crypto.randomUUID().replaceAll("-", "");
  const port = freePort();
  let cleanup: () => Promise<void> = () => Deno.remove(dir, { recursive: true });
  const release = onInterrupt(() => cleanup(), () => stopSync(bin, owner, data, dir));
  try {
    log("initdb...");
    await initCluster(bin, owner, dir, password, { port, ...options.settings });
    cleanup = async () => {
      await pgCtl(bin, owner, data, logFile, ["stop", "-m", "fast"]).catch(() =>
        pgCtl(bin, owner, data, logFile, ["stop", "-m", "immediate"]).catch(() => {})
      );
      await Deno.remove(dir, { recursive: true });
    };
    await pgCtl(bin, owner, data, logFile, ["start"]);
    log(`PostgreSQL started on 127.0.0.1:${port} (${dir})`);
  } catch (error) {
    release();
    await cleanup().catch(() => {});
    throw error;
  }
  const url = `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;
  let admin: postgres.Sql | undefined;
  let stopping: Promise<void> | undefined;
  const stop = () =>
    stopping ??= (async () => {
      await admin?.end({ timeout: 1 }).catch(() => {});
      await cleanup();
      release();
      log("PostgreSQL stopped, its folder removed");
    })();
  return {
    kind: "throwaway",
    url,
    display: redactUrl(url),
    host: "127.0.0.1",
    port,
    user: "postgres",
    password,
    database: "postgres",
    schema: null,
    folder: dir,
    canRestart: true,
    get admin() {
      return admin ??= adminClient(url);
    },
    table: (name) => name,
    urlWith: (change) => changeUrl(url, change),
    restart: () => pgCtl(bin, owner, data, logFile, ["restart", "-m", "fast"]),
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/**
 * initdb into `dir`/data (owned by `owner`), superuser `postgres` with `password` over TCP, and
 * `settings` (the port at least) appended to postgresql.conf. Shared with postgres_cluster.ts.
 */
export async function initCluster(
  bin: string,
  owner: Owner | null,
  dir: string,
  password: string,
  settings: Record<string, string | number>,
): Promise<void> {
  const data = `${dir}/data`;
  if (owner) await Deno.chown(dir, owner.uid, owner.gid);
  await Deno.chmod(dir, 0o700);
  await Deno.writeTextFile(`${dir}/pwfile`, password + "\n", { mode: 0o600 });
  if (owner) await Deno.chown(`${dir}/pwfile`, owner.uid, owner.gid);
  const auth = ["--auth-local=trust", "--auth-host=scram-sha-256", `--pwfile=${dir}/pwfile`];
  const fast = ["-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"];
  await run(owner, `${bin}/initdb`, ["-D", data, "-U", "postgres", ...auth, ...fast]);
  await Deno.remove(`${dir}/pwfile`);
  const all: Record<string, string | number> = {
    listen_addresses: "'127.0.0.1'",
    unix_socket_directories: `'${dir}'`,
    max_connections: 300,
    // A throwaway cluster: durability against an OS crash is not needed, speed is.
    fsync: "off",
    full_page_writes: "off",
    ...settings,
  };
  const conf = Object.entries(all).map(([k, v]) => `${k} = ${v}`).join("\n");
  await Deno.writeTextFile(`${data}/postgresql.conf`, `\n# poolkit\n${conf}\n`, { append: true });
}

/** A postgres.js client (max 2 connections, application_name `poolkit-admin`) for admin SQL. */
export function adminClient(url: string): postgres.Sql {
  return postgres(url, {
    max: 2,
    onnotice: () => {},
    connection: { application_name: "poolkit-admin" },
  });
}

function changeUrl(url: string, change: { user?: string; password?: string }): string {
  const u = new URL(url);
  if (change.user !== undefined) u.username = encodeURIComponent(change.user);
  if (change.password !== undefined) u.password = encodeURIComponent(change.password);
  return u.toString();
}

/** Whether a throwaway cluster can be made here (the PostgreSQL server binaries are installed). */
export async function hasPostgresBinaries(): Promise<boolean> {
  return await findBinaries().then(() => true, () => false);
}

/** The folder holding `initdb` and `pg_ctl`; a {@link NoDatabaseError} when there is none. */
export async function findBinaries(dirs?: string[]): Promise<string> {
  const fromEnv = Deno.env.get("PG_BINDIR");
  const candidates = dirs ?? [...(fromEnv ? [fromEnv] : []), ...postgresBinaryDirs()];
  for (const dir of candidates) {
    try {
      await Deno.stat(`${dir}/initdb`);
      await Deno.stat(`${dir}/pg_ctl`);
      return dir;
    } catch { /* try the next one */ }
  }
  throw new NoDatabaseError(
    `no PostgreSQL server binaries (initdb, pg_ctl) were found in ${candidates.join(", ")}`,
  );
}

/** The ids of the `postgres` system user, which PostgreSQL and PgBouncer run as when we are root. */
export interface Owner {
  uid: number;
  gid: number;
}

/**
 * The `postgres` user's ids when we run as root (both servers refuse root),
 * else null. `what` names the server in the error when the user is missing.
 */
export async function postgresUser(what: string): Promise<Owner | null> {
  if (Deno.uid() !== 0) return null;
  const out = await new Deno.Command("id", { args: ["postgres"], stdout: "piped", stderr: "null" })
    .output();
  const text = new TextDecoder().decode(out.stdout);
  const uid = /uid=(\d+)/.exec(text)?.[1];
  const gid = /gid=(\d+)/.exec(text)?.[1];
  if (!out.success || !uid || !gid) {
    throw new Error(
      `running as root, but there is no \`postgres\` user to run ${what} as (it refuses root). ` +
        "Install the Debian package postgresql, which creates it, or run as a normal user, " +
        "or set DATABASE_URL.",
    );
  }
  return { uid: Number(uid), gid: Number(gid) };
}

/**
 * `cmd args` as a command run by `owner` (through runuser) or by us. As `owner` it runs in `/`:
 * our own working directory may be private (a clone in a 0700 folder, run as root).
 */
function asOwner(owner: Owner | null, cmd: string, args: string[]): Deno.CommandOptions & {
  program: string;
} {
  return owner
    ? { program: "runuser", args: ["-u", "postgres", "--", cmd, ...args], cwd: "/" }
    : { program: cmd, args };
}

/** Runs `cmd args` as `owner` (see asOwner); an error with its stderr when it fails. */
export async function run(owner: Owner | null, cmd: string, args: string[]): Promise<void> {
  const { program, ...command } = asOwner(owner, cmd, args);
  const out = await new Deno.Command(program, { ...command, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    const text = new TextDecoder().decode(out.stderr) || new TextDecoder().decode(out.stdout);
    throw new Error(`${cmd.split("/").pop()} failed (exit ${out.code}): ${text.trim()}`);
  }
}

/** `pg_ctl -D data -l logFile -w args` as `owner`; a failure carries the log's last lines. */
export async function pgCtl(
  bin: string,
  owner: Owner | null,
  data: string,
  logFile: string,
  args: string[],
): Promise<void> {
  try {
    await run(owner, `${bin}/pg_ctl`, ["-D", data, "-l", logFile, "-w", "-t", "30", ...args]);
  } catch (error) {
    const tail = await Deno.readTextFile(logFile).then((t) => t.split("\n").slice(-15).join("\n"))
      .catch(() => "");
    throw new Error(`${(error as Error).message}\nserver log (last lines):\n${tail}`);
  }
}

/**
 * Deletes the folders of throwaway clusters whose process was killed before it could clean up
 * (SIGKILL, a crashed test runner): no live server in them and untouched for 10 minutes. A
 * `poolkit-pg-*` folder holds one server; a `poolkit-pgcluster-*` folder one per subfolder.
 */
export async function sweepStaleClusters(): Promise<void> {
  const base = Deno.env.get("TMPDIR") ?? "/tmp";
  try {
    for await (const entry of Deno.readDir(base)) {
      if (!entry.isDirectory || !/^poolkit-pg(cluster)?-/.test(entry.name)) continue;
      const dir = `${base}/${entry.name}`;
      try {
        const servers = entry.name.startsWith("poolkit-pgcluster-")
          ? (await Array.fromAsync(Deno.readDir(dir))).map((e) => `${dir}/${e.name}`)
          : [dir];
        let live = false;
        let touched = (await Deno.stat(dir)).mtime?.getTime() ?? 0;
        for (const server of servers) {
          const pid = await Deno.readTextFile(`${server}/data/postmaster.pid`)
            .then((t) => Number(t.split("\n")[0]), () => 0);
          live ||= pid > 0 && await Deno.stat(`/proc/${pid}`).then(() => true, () => false);
          const log = await Deno.stat(`${server}/server.log`).catch(() => undefined);
          touched = Math.max(touched, log?.mtime?.getTime() ?? 0);
        }
        if (!live && Date.now() - touched > 10 * 60_000) {
          await Deno.remove(dir, { recursive: true });
        }
      } catch { /* not ours to judge, or already gone */ }
    }
  } catch { /* no temp folder listing: nothing to sweep */ }
}

/** Last resort when the process exits without stop(): immediate shutdown, delete the folder. */
export function stopSync(bin: string, owner: Owner | null, data: string, dir: string): void {
  try {
    const stopNow = ["-D", data, "-w", "-m", "immediate", "stop"];
    const { program, ...command } = asOwner(owner, `${bin}/pg_ctl`, stopNow);
    new Deno.Command(program, { ...command, stdout: "null", stderr: "null" }).outputSync();
  } catch { /* not running */ }
  try {
    Deno.removeSync(dir, { recursive: true });
  } catch { /* already gone */ }
}

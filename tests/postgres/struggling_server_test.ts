/**
 * No storm against a struggling server: after a password change, and when the server is full,
 * the pool opens connections one at a time and slowly, and callers it can serve with the
 * connections it has wait for them instead of failing. Attempts are counted in the server's own
 * log (a throwaway cluster only: an external server's log is not ours to read).
 *
 * @module
 */
import assert from "node:assert/strict";
import { createPostgresPool } from "../../adapters/postgres/mod.ts";
import { type Database, startDatabase } from "../../tasks/setup/postgres.ts";
import { appName, eventually, warm } from "./target.ts";

/** The server log's lines written from now on, with their time (the `%m` prefix), on demand. */
async function logFrom(db: Database): Promise<() => Promise<{ at: number; line: string }[]>> {
  const file = `${db.folder}/server.log`;
  const start = (await Deno.stat(file)).size;
  return async () => {
    const bytes = await Deno.readFile(file);
    return new TextDecoder().decode(bytes.subarray(start)).split("\n").flatMap((line) => {
      const stamp = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d{3}) UTC/.exec(line);
      return stamp ? [{ at: Date.parse(`${stamp[1]}T${stamp[2]}Z`), line }] : [];
    });
  };
}

/** Runs `callers` loops of `call` for `ms`; resolves with how many calls ended and failed. */
async function load(callers: number, ms: number, call: () => Promise<unknown>) {
  const started = Date.now();
  const failures: unknown[] = [];
  let done = 0;
  await Promise.all(Array.from({ length: callers }, async () => {
    while (Date.now() - started < ms) {
      await call().then(() => done++, (error) => failures.push(error));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }));
  return { started, done, failures };
}

Deno.test({
  name: "postgres against a struggling server",
  ignore: Deno.env.get("DATABASE_URL") !== undefined,
  fn: async (t) => {
    await using db = await startDatabase({ throwaway: true });

    await t.step(
      "a password changed under load: failed logins come one at a time, not in a burst",
      async () => {
        const role = `rotated_${crypto.randomUUID().slice(0, 8)}`;
        await db.admin.unsafe(`create role ${role} login password 'first-password'`);
        try {
          const url = new URL(db.urlWith({ user: role, password: "first-password" }));
          const app = appName("rotated");
          await using pg = createPostgresPool({
            url: url.href,
            connection: { application_name: app },
            pool: { max: 10 },
          });
          await warm(pg, 10);
          // Three connections stay live and busy; the idle ones are terminated.
          const busy = Array.from({ length: 3 }, () => pg.use((sql) => sql`select pg_sleep(2)`));
          await eventually("three statements run", async () => {
            const [{ n }] = await db.admin<{ n: number }[]>`select count(*)::int as n
              from pg_stat_activity where application_name = ${app} and state = 'active'`;
            return n === 3;
          });
          await db.admin.unsafe(`alter role ${role} password 'second-password'`);
          await db.admin`select pg_terminate_backend(pid) from pg_stat_activity
            where application_name = ${app} and state = 'idle'`;
          await eventually("the terminated backends are gone", async () => {
            const [{ n }] = await db.admin<{ n: number }[]>`select count(*)::int as n
              from pg_stat_activity where application_name = ${app}`;
            return n === 3;
          });
          await new Promise((resolve) => setTimeout(resolve, 100)); // the pool saw the sockets close
          const log = await logFrom(db);
          const { started } = await load(
            50,
            1_500,
            () => pg.query("select 1", [], { timeoutMs: 1_000 }),
          );
          await Promise.allSettled(busy);
          const failed = (await log()).filter((l) =>
            l.line.includes(`password authentication failed for user "${role}"`)
          );
          const firstSecond = failed.filter((l) => l.at < started + 1_000);
          assert.ok(failed.length >= 1, "the old password was tried");
          assert.ok(
            firstSecond.length <= 2,
            `${firstSecond.length} failed logins in the first second (at most 2)`,
          );
        } finally {
          await db.admin.unsafe(`drop role if exists ${role}`);
        }
      },
    );

    await t.step(
      "a full server: callers wait for the connections that exist, and refusals are retried slowly",
      async () => {
        const role = `limited_${crypto.randomUUID().slice(0, 8)}`;
        await db.admin.unsafe(`create role ${role} login password 'pw' connection limit 3`);
        try {
          const url = db.urlWith({ user: role, password: "pw" });
          await using pg = createPostgresPool({ url, pool: { max: 10 } });
          const log = await logFrom(db);
          const { done, failures } = await load(
            20,
            3_000,
            () => pg.query("select 1", [], { timeoutMs: 2_000 }),
          );
          const refused = (await log()).filter((l) =>
            l.line.includes(`too many connections for role "${role}"`)
          );
          assert.equal(
            failures.length,
            0,
            `${failures.length} of ${done + failures.length} calls failed (${failures[0]}); ` +
              "three connections could serve them all",
          );
          assert.ok(refused.length >= 1, "the pool tried to grow past the server's limit");
          const burst = refused.filter((l) => l.at < refused[0].at + 500);
          assert.ok(
            burst.length <= 2,
            `${burst.length} refused attempts within 500 ms (at most 2)`,
          );
        } finally {
          await db.admin`select pg_terminate_backend(pid) from pg_stat_activity
            where usename = ${role}`;
          await db.admin.unsafe(`drop role if exists ${role}`);
        }
      },
    );
  },
});

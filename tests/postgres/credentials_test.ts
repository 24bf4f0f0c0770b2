/**
 * A `credentials` function instead of a fixed password: called for each new connection; when
 * the password rotates (`ALTER ROLE ... PASSWORD`), connections made with the old one are retired
 * and no login fails; the password never shows in an error, event or statistic.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  createPostgresPool,
  type Credentials,
  noPool,
  type PostgresPoolEvent,
} from "../../adapters/postgres/mod.ts";
import { startDatabase } from "../../tasks/setup/postgres.ts";
import { appName, eventually, warm } from "./target.ts";

Deno.test("postgres credentials function", async (t) => {
  await using db = await startDatabase();
  const role = `rotating_${crypto.randomUUID().slice(0, 8)}`;
  const first = `first-${crypto.randomUUID()}`;
  await db.admin.unsafe(`create role ${role} login password '${first}'`);
  const url = db.urlWith({ user: role, password: "unused-url-password" });

  /** Backend pids of `app`'s connections on the server now. */
  const backends = async (app: string) =>
    (await db.admin<{ pid: number }[]>`
      select pid from pg_stat_activity where application_name = ${app}`).map((r) => r.pid);

  await t.step("it is called once for each new connection", async () => {
    let calls = 0;
    await using pg = createPostgresPool({
      url,
      credentials: () => (calls++, { user: role, password: first }),
      pool: noPool(),
    });
    for (let i = 0; i < 3; i++) await pg.query`select 1`;
    assert.equal(calls, 3);
    assert.equal(pg.stats().created, 3);
  });

  await t.step(
    "credentials with an expiresAt in the future are reused: one call, and nothing is retired",
    async () => {
      let calls = 0;
      const app = appName("expiring");
      await using pg = createPostgresPool({
        url,
        // As an IAM token source gives them: valid for 14 minutes.
        credentials: () => {
          calls++;
          return { user: role, password: first, expiresAt: Date.now() + 14 * 60_000 };
        },
        connection: { application_name: app },
        pool: { max: 4 },
      });
      await warm(pg, 4);
      const opened = new Set(await backends(app));
      await warm(pg, 4);
      assert.equal(calls, 1, "the credentials were reused until they expire");
      assert.deepEqual(new Set(await backends(app)), opened, "no connection was retired");
    },
  );

  await t.step("an expiresAt that is not a time is a TypeError saying what to give", async () => {
    await using pg = createPostgresPool({
      url,
      credentials: () => ({ password: first, expiresAt: "soon" as unknown as number }),
      pool: { acquireTimeoutMs: 500 },
    });
    const error = await pg.query`select 1`.then(() => undefined, (e) => e);
    let text = "";
    for (let e: unknown = error; e instanceof Error; e = e.cause) text += e.message;
    assert.match(text, /expiresAt .*Date.now\(\)/);
  });

  await t.step("an async function works as well, and user may be left to the URL", async () => {
    await using pg = createPostgresPool({
      url,
      credentials: async () => {
        await Promise.resolve();
        return { password: first };
      },
    });
    const [{ user }] = await pg.query<{ user: string }[]>`select current_user as user`;
    assert.equal(user, role);
  });

  await t.step(
    "after the password rotates, connections made with the old one are retired and no login fails",
    async () => {
      const app = appName("rotation");
      let current: Credentials = { user: role, password: first };
      await using pg = createPostgresPool({
        url,
        credentials: () => current,
        connection: { application_name: app },
        pool: { max: 4 },
      });
      await warm(pg, 3);
      const old = new Set(await backends(app));
      assert.equal(old.size, 3);
      const second = `second-${crypto.randomUUID()}`;
      await db.admin.unsafe(`alter role ${role} password '${second}'`);
      current = { user: role, password: second };
      await warm(pg, 4); // one new connection: it logs in with the new password
      await warm(pg, 4); // the old ones came back and were retired: new ones replace them
      // Retired connections' sockets are closed at once; their backends end a moment later.
      await eventually("no connection from before is left", async () => {
        const now = await backends(app);
        return now.length === 4 && now.every((pid) => !old.has(pid));
      });
      assert.equal(pg.stats().createErrors, 0, "no login failed");
      await db.admin.unsafe(`alter role ${role} password '${first}'`);
    },
  );

  await t.step("the password never reaches an error, an event or the statistics", async () => {
    const wrong = `wrong-${crypto.randomUUID()}`;
    await using pg = createPostgresPool({
      url,
      credentials: () => ({ user: role, password: wrong }),
    });
    const events: PostgresPoolEvent[] = [];
    const reading = (async () => {
      for await (const event of pg.events()) events.push(event);
    })();
    const error = await pg.query`select 1`.then(() => undefined, (e) => e);
    assert.ok(error instanceof Error);
    let text = "";
    for (let e: unknown = error; e instanceof Error; e = e.cause) text += `${e.message} ${e.stack}`;
    assert.match(text, /password authentication failed/);
    await pg.close();
    await reading;
    const shown = [text, JSON.stringify(pg.stats()), ...events.map((e) => JSON.stringify(e))];
    for (const e of events) {
      if ("error" in e && e.error instanceof Error) shown.push(e.error.message);
    }
    assert.ok(shown.every((s) => !s.includes(wrong)), "the password was shown");
  });

  await t.step(
    "a credentials function that throws fails the connect, its error as cause",
    async () => {
      const cause = new Error("vault sealed");
      await using pg = createPostgresPool({
        url,
        credentials: () => {
          throw cause;
        },
        pool: { acquireTimeoutMs: 500 },
      });
      const error = await pg.query`select 1`.then(() => undefined, (e) => e);
      let found = false;
      for (let e: unknown = error; e instanceof Error; e = e.cause) found ||= e === cause;
      assert.ok(found, `the function's error is in the cause chain of ${error}`);
    },
  );
  await t.step(
    "close() ends while the credentials function hangs, and the function sees its signal abort",
    async () => {
      const { promise: called, resolve: calledWith } = Promise.withResolvers<AbortSignal>();
      const pg = createPostgresPool({
        url,
        credentials: ({ signal }) => {
          calledWith(signal);
          return new Promise<Credentials>(() => {}); // a vault that never answers
        },
      });
      const query = pg.query`select 1`.then(() => undefined, (e) => e);
      const signal = await called;
      await pg.close();
      assert.equal(signal.aborted, true);
      assert.ok(await query instanceof Error, "the waiting query was rejected");
    },
  );
});

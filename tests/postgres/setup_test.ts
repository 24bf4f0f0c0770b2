/**
 * The database helpers themselves: what they say when there is no PostgreSQL at all, that an
 * interrupted run leaves no cluster behind, that they work as root from a private folder, and
 * that a PgBouncer that fails to start leaves no folder (holding the password) behind.
 *
 * @module
 */
import assert from "node:assert/strict";
import { leftInTmp } from "../setup/left_in_tmp.ts";
import { hasPgBouncer, startPgBouncer } from "../../tasks/setup/pgbouncer.ts";
import { hasPostgresBinaries, NoDatabaseError, startDatabase } from "../../tasks/setup/postgres.ts";

Deno.test("without binaries and without DATABASE_URL the error names both ways out", async () => {
  const saved = Deno.env.get("DATABASE_URL");
  Deno.env.delete("DATABASE_URL");
  try {
    const error = await startDatabase({ binDirs: ["/nonexistent/bin"] }).then(
      () => assert.fail("must not start"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof NoDatabaseError);
    assert.match(error.message, /apt-get install postgresql/);
    assert.match(error.message, /DATABASE_URL=postgres:\/\//);
    assert.match(error.message, /\/nonexistent\/bin/);
  } finally {
    if (saved !== undefined) Deno.env.set("DATABASE_URL", saved);
  }
});

Deno.test({
  name: "an interrupted run (SIGINT) stops and deletes its throwaway cluster",
  ignore: Deno.build.os === "windows" || !(await hasPostgresBinaries()),
  fn: async () => {
    const script = `
      import { startDatabase } from ${
      JSON.stringify(new URL("../../tasks/setup/postgres.ts", import.meta.url).href)
    };
      const db = await startDatabase({ throwaway: true });
      console.log(JSON.stringify({ folder: db.folder, port: db.port }));
      await new Promise(() => setInterval(() => {}, 1000));
    `;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", script],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    const { folder, port } = JSON.parse(text);
    await Deno.stat(folder); // the cluster exists while the child runs
    child.kill("SIGINT");
    const status = await child.status;
    await reader.cancel();
    assert.equal(status.code, 130);
    await assert.rejects(Deno.stat(folder), Deno.errors.NotFound, "the folder is deleted");
    await assert.rejects(
      Deno.connect({ hostname: "127.0.0.1", port }),
      Deno.errors.ConnectionRefused,
      "the server is stopped",
    );
  },
});

const asRoot = Deno.uid() === 0;
const pgbouncerScript = (setupUrl: string) => `
  import { startDatabase } from ${JSON.stringify(`${setupUrl}/postgres.ts`)};
  import { startPgBouncer } from ${JSON.stringify(`${setupUrl}/pgbouncer.ts`)};
  import postgres from "postgres";
  await using db = await startDatabase({ throwaway: true });
  await using bouncer = await startPgBouncer(db);
  const sql = postgres(bouncer.url, { prepare: false, max: 1 });
  const [row] = await sql\`select 1 as one\`;
  await sql.end();
  console.log(JSON.stringify(row));
`;

Deno.test({
  name:
    "as root from a private (0700) working directory, the cluster and PgBouncer start and answer",
  ignore: !asRoot || !(await hasPostgresBinaries()) || !(await hasPgBouncer()),
  fn: async () => {
    const privateDir = await Deno.makeTempDir({ prefix: "poolkit-private-cwd-" });
    try {
      assert.equal((await Deno.stat(privateDir)).mode! & 0o777, 0o700);
      const setupUrl = new URL("../../tasks/setup", import.meta.url).href;
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "eval",
          `--config=${new URL("../../deno.json", import.meta.url).pathname}`,
          pgbouncerScript(setupUrl),
        ],
        cwd: privateDir,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, stderr);
      assert.deepEqual(JSON.parse(new TextDecoder().decode(out.stdout)), { one: 1 });
    } finally {
      await Deno.remove(privateDir, { recursive: true });
    }
  },
});

/** Starts PgBouncer with `PGBOUNCER=binary` in front of a server that is never reached. */
async function startFailingPgBouncer(binary: string): Promise<unknown> {
  const saved = Deno.env.get("PGBOUNCER");
  Deno.env.set("PGBOUNCER", binary);
  try {
    const bouncer = await startPgBouncer({ url: "postgres://u:pg-secret@127.0.0.1:9/db" });
    await bouncer.stop();
    return assert.fail("PgBouncer must not start");
  } catch (error) {
    return error;
  } finally {
    if (saved === undefined) Deno.env.delete("PGBOUNCER");
    else Deno.env.set("PGBOUNCER", saved);
  }
}

Deno.test({
  name: "a PgBouncer that cannot be started deletes its folder, which holds the password",
  ignore: Deno.build.os === "windows" || (asRoot && !(await hasPostgresBinaries())),
  fn: async () => {
    const notExecutable = await Deno.makeTempFile({ prefix: "poolkit-not-a-binary-" });
    try {
      let error: unknown;
      const left = await leftInTmp(async () => error = await startFailingPgBouncer(notExecutable));
      assert.ok(error instanceof Error);
      assert.doesNotMatch(error.message, /pg-secret/);
      assert.deepEqual(left, []);
    } finally {
      await Deno.remove(notExecutable);
    }
  },
});

Deno.test({
  name: "a PgBouncer that exits at once deletes its folder and says it exited",
  ignore: Deno.build.os === "windows" || (asRoot && !(await hasPostgresBinaries())),
  fn: async () => {
    let error: unknown;
    const left = await leftInTmp(async () => error = await startFailingPgBouncer("/bin/false"));
    assert.ok(error instanceof Error);
    assert.match(error.message, /PgBouncer did not start .*\(it exited\)/);
    assert.doesNotMatch(error.message, /pg-secret/);
    assert.deepEqual(left, []);
  },
});

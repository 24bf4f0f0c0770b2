/**
 * The database helper itself: what it says when there is no PostgreSQL at all, and that an
 * interrupted run leaves no cluster behind.
 *
 * @module
 */
import assert from "node:assert/strict";
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

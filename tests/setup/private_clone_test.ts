/**
 * The suite's setup from a copy of the repository in a private folder (mode 0700, as `mktemp -d`
 * makes it and as CI may clone), run as root: the setup task (npm packages, the pkcs11js build,
 * the SoftHSM2 token), then a throwaway PostgreSQL with PgBouncer in front and a temporary token,
 * each used once. PostgreSQL and PgBouncer run as user `postgres`, who cannot enter the folder.
 *
 * @module
 */
import assert from "node:assert/strict";
import { hasPgBouncer } from "../../tasks/setup/pgbouncer.ts";
import { hasPostgresBinaries } from "../../tasks/setup/postgres.ts";

const repo = new URL("../../", import.meta.url).pathname;

/** The repository's files (tracked and new, as git lists them), without node_modules/.local. */
async function repositoryFiles(): Promise<string[]> {
  const out = await new Deno.Command("git", {
    args: ["ls-files", "-z", "--cached", "--others", "--exclude-standard"],
    cwd: repo,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout).split("\0").filter((f) => f.length > 0);
}

/** Copies the working tree into a fresh 0700 folder; returns the copy's path. */
async function privateCopy(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "poolkit-private-clone-" });
  for (const file of await repositoryFiles()) {
    const from = `${repo}${file}`;
    if (!(await Deno.stat(from).then((s) => s.isFile, () => false))) continue; // deleted
    await Deno.mkdir(`${dir}/${file}`.replace(/\/[^/]+$/, ""), { recursive: true });
    await Deno.copyFile(from, `${dir}/${file}`);
  }
  return dir;
}

/** Runs deno with `args` in `cwd`; returns its stdout, failing with its stderr. */
async function deno(cwd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, `deno ${args.join(" ")} failed:\n${stderr}`);
  return new TextDecoder().decode(out.stdout) + stderr;
}

/** Starts the throwaway cluster, PgBouncer and a temporary token in the copy, and uses each. */
const USE_EVERYTHING = `
  import postgres from "postgres";
  import { startDatabase } from "./tasks/setup/postgres.ts";
  import { startPgBouncer } from "./tasks/setup/pgbouncer.ts";
  import { provisionSoftHsm } from "./tasks/setup/softhsm.ts";
  const { openHsm } = await import("./adapters/pkcs11/mod.ts");
  await using db = await startDatabase({ throwaway: true });
  await using bouncer = await startPgBouncer(db);
  const sql = postgres(bouncer.url, { prepare: false, max: 1 });
  const [{ one }] = await sql\`select 1 as one\`;
  await sql.end();
  await using token = await provisionSoftHsm({ temporary: true });
  await using hsm = await openHsm({ tokenLabel: token.tokenLabel, pin: token.pin });
  const random = await hsm.use((s) => s.random(16));
  console.log(JSON.stringify({ one, random: random.length, folders: [db.folder, token.tokenDir] }));
`;

Deno.test({
  name: "as root, the suite's setup works from a copy of the repository in a 0700 folder",
  ignore: Deno.uid() !== 0 || !(await hasPostgresBinaries()) || !(await hasPgBouncer()),
  fn: async (t) => {
    const clone = await privateCopy();
    try {
      assert.equal((await Deno.stat(clone)).mode! & 0o777, 0o700);
      await t.step(
        "the setup task installs the npm packages, builds pkcs11js, makes the token",
        async () => {
          const log = await deno(clone, ["run", "-A", "tasks/setup/main.ts", "--for", "test"]);
          assert.match(log, /compiling src\/main\.cpp/);
          assert.match(log, /setup: ready for test/);
          assert.ok((await Deno.stat(`${clone}/.local/softhsm/softhsm2.conf`)).isFile);
        },
      );
      await t.step(
        "PostgreSQL, PgBouncer and a token start there, answer, and are removed",
        async () => {
          const out = await deno(clone, ["eval", USE_EVERYTHING]);
          const result = JSON.parse(out.split("\n").find((l) => l.startsWith("{"))!);
          assert.equal(result.one, 1);
          assert.equal(result.random, 16);
          for (const folder of result.folders) {
            await assert.rejects(Deno.stat(folder), Deno.errors.NotFound, `${folder} is removed`);
          }
        },
      );
    } finally {
      await Deno.remove(clone, { recursive: true });
    }
  },
});

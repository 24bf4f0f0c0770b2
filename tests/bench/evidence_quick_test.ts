/**
 * The evidence scripts of FINDINGS.md must keep running: each is run once,
 * very short, in a subprocess, against the real SoftHSM token and a
 * throwaway PostgreSQL. Their tables are checked for shape, not for speed.
 *
 * @module
 */
import assert from "node:assert/strict";

const root = new URL("../../", import.meta.url).pathname;

async function run(script: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, `${script} failed (exit ${out.code}):\n${stderr}`);
  return new TextDecoder().decode(out.stdout);
}

Deno.test("hsm_calls.ts counts the pkcs11js calls of each path and times them", async () => {
  const out = await run(
    "tasks/bench/hsm_calls.ts",
    "--ops",
    "20",
    "--slices",
    "1",
    "--slice-ms",
    "30",
  );
  assert.match(out, /\| aes \| hand-written \*Async \| .*C_EncryptAsync 1\.00/);
  assert.match(out, /\| ecdsa \| adapter "async" ×4 \| .*C_SignAsync 1\.00/);
  assert.match(out, /\| ecdsa \| 32 \| hand-written async \| \d+ \|/);
});

Deno.test("pg_profile.ts gives CPU and socket writes per query of each contender", async () => {
  const out = await run("tasks/bench/pg_profile.ts", "--slices", "1", "--slice-ms", "30");
  for (const name of ["poolkit", "Pool + bare postgres.js", "postgres.js pool", "pg.Pool"]) {
    assert.match(
      out,
      new RegExp(`\\| ${name.replaceAll("+", "\\+")} \\| \\d+ \\| \\d+ \\| [\\d.]+ \\|`),
    );
  }
});

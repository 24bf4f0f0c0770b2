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
  // Counted at the native binding, where pkcs11js's *Async calls end: as *Callback calls.
  assert.match(out, /\| aes \| hand-written \*Async \| .*C_EncryptCallback 1\.00/);
  assert.match(out, /\| ecdsa \| adapter "async" ×4 \| .*C_SignCallback 1\.00/);
  assert.match(out, /\| ecdsa \| 32 \| hand-written async \| \d+ \|/);
});

Deno.test("hsm_calls.ts --init-call times a synchronous *Init and call", async () => {
  const out = await run("tasks/bench/hsm_calls.ts", "--init-call");
  assert.match(out, /sync aes: \*Init p50 [\d.]+ µs, p99 [\d.]+ µs .*call p50 [\d.]+ µs/);
  assert.match(out, /sync ecdsa: \*Init p50 [\d.]+ µs/);
});

Deno.test("hsm_calls.ts --slow-us runs the paths behind a module that waits per call", async () => {
  const out = await run(
    "tasks/bench/hsm_calls.ts",
    ...["--slow-us", "200", "--only", "pool default ×4,hand-written async", "--kind", "aes"],
    ...["--callers", "4", "--slices", "1", "--slice-ms", "50"],
  );
  assert.match(out, /every \*Init and crypto call waits 200 µs first/);
  assert.match(out, /\| aes \| 4 \| pool default ×4 \| \d+ \| \d+ \| [\d.]+ \| [\d.]+ \|/);
  assert.match(out, /\| aes \| 4 \| hand-written async \| \d+ \|/);
});

Deno.test("hsm_scaling.ts runs the raw loop in one thread, in threads and in processes", async () => {
  const out = await run("tasks/bench/hsm_scaling.ts", "--slices", "1", "--slice-ms", "50");
  for (
    const layout of [
      "1 thread \\(the raw sync loop\\)",
      "1 Worker thread",
      "2 threads, one process",
      "2 processes",
    ]
  ) {
    assert.match(out, new RegExp(`\\| aes \\| ${layout} \\| \\d+ \\| \\d+ \\| [\\d.]+ \\|`));
  }
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

Deno.test("every evidence tool answers a bad argument with what was wrong and its usage, exit 2", async () => {
  const tools = [
    ["hsm_calls.ts", "--callers", "many"],
    ["hsm_scaling.ts", "--kind", "rsa"],
    ["pg_profile.ts", "--bogus"],
    ["pg_reset_cost.ts", "abc"],
    ["cpuprofile.ts"],
  ];
  for (const [tool, ...args] of tools) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `tasks/bench/${tool}`, ...args],
      cwd: root,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 2, `${tool} ${args.join(" ")}: exit ${out.code}\n${stderr}`);
    assert.match(stderr, new RegExp(`usage: deno run -A tasks/bench/${tool.replace(".", "\\.")}`));
    assert.doesNotMatch(stderr, /\n\s+at /, `${tool}: a stack trace`);
  }
});

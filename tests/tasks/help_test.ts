/**
 * Every task answers `--help` with its usage and an unknown flag with the usage and exit code 2,
 * and in both cases does nothing else: no build, no token, no cluster, no benchmark. The
 * backends are pointed at nothing, so a task that reached one would fail or print to stderr.
 *
 * @module
 */
import assert from "node:assert/strict";

const root = new URL("../../", import.meta.url).pathname;

/** Every task in deno.json but `test` and `check` (whose flags are deno's own). */
const TASKS = Object.keys(
  JSON.parse(await Deno.readTextFile(`${root}deno.json`)).tasks as Record<string, string>,
).filter((name) => name !== "test" && name !== "check");

/** Names and modification times of everything a task could create: tokens, results, clusters. */
async function footprint(): Promise<string[]> {
  const seen: string[] = [];
  const walk = async (dir: string) => {
    const entries = await Array.fromAsync(Deno.readDir(dir)).catch((error) => {
      if (error instanceof Deno.errors.NotFound) return [];
      throw error;
    });
    for (const entry of entries) {
      const path = `${dir}/${entry.name}`;
      const { mtime } = await Deno.lstat(path);
      seen.push(`${path} ${mtime?.getTime()}`);
      if (entry.isDirectory) await walk(path);
    }
  };
  for (const dir of [".local", "bench-results"]) await walk(`${root}${dir}`);
  return seen.sort();
}

/** A usage line naming the task (`bench` and `bench:core` share one usage). */
function usageLine(name: string): RegExp {
  return new RegExp(`^(usage: | +)deno task ${name}( |$)`, "m");
}

async function runTask(name: string, flag: string) {
  const before = await footprint();
  const run = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", name, flag],
    cwd: root,
    env: {
      DATABASE_URL: "postgres://nobody@127.0.0.1:1/nothing",
      PKCS11_MODULE: "/nonexistent/pkcs11.so",
      SOFTHSM2_CONF: "/nonexistent/softhsm2.conf",
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const after = await footprint();
  return {
    code: run.code,
    stdout: new TextDecoder().decode(run.stdout),
    stderr: new TextDecoder().decode(run.stderr),
    unchanged: before.join("\n") === after.join("\n"),
  };
}

Deno.test("the tasks under test are every task but test and check", () => {
  assert.deepEqual(TASKS.toSorted(), [
    "bench",
    "bench:core",
    "concurrency",
    "demo",
    "demo:failover",
    "demo:hsm",
    "demo:orders",
    "serve",
    "setup",
    "setup:hsm",
  ]);
});

Deno.test("a misspelled flag is named with the nearest known one", async () => {
  const run = await runTask("serve", "--pool-mx");
  assert.equal(run.code, 2, run.stderr);
  assert.match(run.stderr, /^unknown flag --pool-mx \(did you mean --pool-max\?\)$/m);
  assert.ok(run.unchanged);
});

for (const name of TASKS) {
  Deno.test(`deno task ${name} --help prints its usage, exits 0 and runs nothing`, async () => {
    const run = await runTask(name, "--help");
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^usage: /);
    assert.match(run.stdout, usageLine(name), run.stdout);
    assert.equal(run.stderr, "");
    assert.ok(run.unchanged, "nothing in .local/ or bench-results/ was created or changed");
  });

  Deno.test(`deno task ${name} with an unknown flag prints the usage to stderr, exits 2 and runs nothing`, async () => {
    const run = await runTask(name, "--no-such-flag");
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /no-such-flag/);
    assert.match(run.stderr, usageLine(name), run.stderr);
    assert.equal(run.stdout, "");
    assert.ok(run.unchanged, "nothing in .local/ or bench-results/ was created or changed");
  });
}

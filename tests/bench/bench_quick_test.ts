/**
 * The benchmark must never silently rot: `deno task bench --quick` runs
 * every benchmark end to end (real PostgreSQL, real SoftHSM) once, in a
 * subprocess, writing into a temp folder so the committed results stay.
 * Figures are not checked (speed is judged by the benchmark, not by tests);
 * that everything ran and every output was written is.
 *
 * @module
 */
import assert from "node:assert/strict";

const root = new URL("../../", import.meta.url).pathname;

interface Report {
  quick: boolean;
  machine: { cores: number; deno: string; v8: string; os: string; date: string };
  benchmarks: {
    id: string;
    skipped?: string;
    scenarios: {
      scenario: { id: string };
      results: { contender: string; error?: string; rounds: { ops: number }[] }[];
    }[];
    targets: { label: string; verdict: string }[];
  }[];
}

Deno.test("deno task bench --quick runs every benchmark and writes tables, JSON and charts", async () => {
  const out = await Deno.makeTempDir({ prefix: "poolkit-bench-" });
  try {
    const run = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "tasks/bench/main.ts", "--quick", "--out", out],
      cwd: root,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(run.stdout);
    const stderr = new TextDecoder().decode(run.stderr);
    assert.equal(run.code, 0, `bench --quick failed (exit ${run.code}):\n${stderr}`);

    const report: Report = JSON.parse(await Deno.readTextFile(`${out}/results.json`));
    assert.equal(report.quick, true);
    assert.ok(report.machine.cores > 0 && report.machine.deno && report.machine.v8);
    assert.deepEqual(
      report.benchmarks.map((b) => b.id),
      ["core", "postgres", "postgres-driver", "hsm"],
    );
    for (const b of report.benchmarks) {
      assert.equal(b.skipped, undefined, `${b.id} did not run: ${b.skipped}`);
      assert.ok(b.scenarios.length > 0, `${b.id} has no scenarios`);
      for (const s of b.scenarios) {
        for (const r of s.results) {
          const where = `${b.id} / ${s.scenario.id} / ${r.contender}`;
          assert.equal(r.error, undefined, `${where} failed: ${r.error}`);
          assert.ok(r.rounds.length > 0 && r.rounds.every((x) => x.ops > 0), `${where}: no ops`);
        }
      }
      for (const t of b.targets) assert.match(t.verdict, /^(PASS|MISS)$/, t.label);
      assert.match(stdout, new RegExp(`\\| scenario +\\| contender`), "a results table on stdout");
      const svg = await Deno.readTextFile(`${out}/${b.id}-throughput.svg`);
      assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"[\s\S]*<\/svg>\n$/);
    }
    for (const id of ["postgres", "hsm"]) {
      assert.match(await Deno.readTextFile(`${out}/${id}-latency.svg`), /<polyline /);
    }
    assert.match(await Deno.readTextFile(`${out}/results.md`), /\| target +\| measured/);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

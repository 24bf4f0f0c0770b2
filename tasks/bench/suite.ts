/**
 * Runs a list of benchmarks end to end: say what each measures, prepare its
 * setup (a throwaway PostgreSQL, a private SoftHSM token), run the rounds,
 * clean up, then print the tables to stdout and write the files.
 *
 * @module
 */

import denoJson from "../../deno.json" with { type: "json" };
import type { Benchmark, BenchmarkResult } from "./benchmark.ts";
import type { BenchArgs } from "./cli.ts";
import { describeMachine, machineInfo } from "./machine.ts";
import { benchmarkMarkdown } from "./markdown.ts";
import { Progress } from "./progress.ts";
import { type RunReport, writeReport } from "./report.ts";
import { runBenchmark } from "./rounds.ts";
import { evaluateTargets } from "./targets.ts";

/** Runs `benchmarks`, prints their tables, writes the report; returns it. */
export async function runSuite(
  benchmarks: readonly Benchmark[],
  args: BenchArgs,
): Promise<RunReport> {
  const progress = new Progress();
  // Say what escaped, with its stack, before the process dies of it.
  globalThis.addEventListener("unhandledrejection", (e) => {
    progress.log(`bench: unhandled rejection: ${(e.reason as Error)?.stack ?? e.reason}`);
  });
  const machine = machineInfo();
  progress.log(`bench: ${describeMachine(machine)}${args.quick ? " (quick run)" : ""}`);
  const results: BenchmarkResult[] = [];
  for (const bench of benchmarks) {
    progress.log(`\n${bench.title}: ${bench.measures}`);
    const result = await runOne(bench, args, progress);
    progress.clear();
    console.log(benchmarkMarkdown(result));
    results.push(result);
  }
  const report: RunReport = {
    machine,
    quick: args.quick,
    plan: args.plan,
    versions: { ...denoJson.imports },
    benchmarks: results,
  };
  const files = await writeReport(args.outDir, report);
  progress.log(`bench: wrote ${files.join(", ")}`);
  return report;
}

async function runOne(
  bench: Benchmark,
  args: BenchArgs,
  progress: Progress,
): Promise<BenchmarkResult> {
  let cleanup: (() => Promise<void>) | undefined;
  try {
    cleanup = await bench.prepare?.();
  } catch (error) {
    // Setup that cannot run (no PostgreSQL binaries, no SoftHSM) is reported, and its targets MISS.
    const message = error instanceof Error ? error.message : String(error);
    progress.log(`  not run: ${message}`);
    return {
      id: bench.id,
      title: bench.title,
      measures: bench.measures,
      primary: bench.primary,
      plan: args.plan,
      contenders: bench.contenders.map(({ name, description, ours }) => ({
        name,
        description,
        ours,
      })),
      scenarios: [],
      targets: evaluateTargets(bench.targets, []),
      notes: [],
      skipped: message,
    };
  }
  try {
    return await runBenchmark(bench, args.plan, progress);
  } finally {
    await cleanup?.();
  }
}

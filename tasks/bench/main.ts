/**
 * `deno task bench`: this pool against the libraries users would pick
 * instead, on this machine, in one run. Tables go to stdout, progress to
 * stderr, and results.json, results.md and SVG charts to `bench-results/`
 * (`--quick`: a seconds-long smoke run into `bench-results/tmp/`).
 *
 *   deno task bench [--quick] [--out DIR] [core] [postgres] [postgres-driver] [hsm]
 *
 * @module
 */

import type { Benchmark } from "./benchmark.ts";
import { type BenchArgs, exitOnUsageError, parseArgs } from "./cli.ts";
import { coreBenchmark } from "./core.ts";
import { hsmBenchmark } from "./hsm.ts";
import { postgresBenchmark } from "./postgres.ts";
import { postgresDriverBenchmark } from "./postgres_driver.ts";
import type { RunReport } from "./report.ts";
import { runSuite } from "./suite.ts";

export type * from "./benchmark.ts";
export type * from "./targets.ts";
export type * from "./report.ts";
export type * from "./stats.ts";
export type * from "./cli.ts";

/** Every benchmark, in run order. */
export const BENCHMARKS: readonly Benchmark[] = [
  coreBenchmark,
  postgresBenchmark,
  postgresDriverBenchmark,
  hsmBenchmark,
];

/** Runs the benchmarks named on the command line (all by default). */
export async function main(args: readonly string[]): Promise<RunReport> {
  const parsed: BenchArgs = parseArgs(args, BENCHMARKS.map((b) => b.id), true);
  const chosen = parsed.only.length
    ? BENCHMARKS.filter((b) => parsed.only.includes(b.id))
    : BENCHMARKS;
  return await runSuite(chosen, parsed);
}

if (import.meta.main) {
  await main(Deno.args).catch(exitOnUsageError);
}

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

import { exitOnUsageError, parseTaskArgs, UsageError, wholeNumber } from "../task_args.ts";
import type { Benchmark, RunPlan } from "./benchmark.ts";
import { coreBenchmark } from "./core.ts";
import { hsmBenchmark } from "./hsm.ts";
import { postgresBenchmark, postgresDriverBenchmark } from "./postgres.ts";
import type { RunReport } from "./report.ts";
import { runSuite } from "./suite.ts";

/** Every benchmark, in run order. */
export const BENCHMARKS: readonly Benchmark[] = [
  coreBenchmark,
  postgresBenchmark,
  postgresDriverBenchmark,
  hsmBenchmark,
];

/** Parsed command line. */
export interface BenchArgs {
  /** Seconds-long smoke run instead of the full measurement. */
  quick: boolean;
  /** Folder for results.json, results.md and the charts. */
  outDir: string;
  /** Benchmarks to run (ids); empty means all. */
  only: string[];
  /** Run lengths. */
  plan: RunPlan;
}

/** Full run: enough rounds for a median and a spread on a noisy 2-core VM. */
const FULL_PLAN: RunPlan = { rounds: 5, trialMs: 1_000, warmupMs: 500 };
/** Quick run: proves everything works end to end, figures are not meaningful. */
const QUICK_PLAN: RunPlan = { rounds: 1, trialMs: 40, warmupMs: 20 };

const USAGE =
  `usage: deno task bench [--quick] [--out DIR] [--rounds N] [--trial-ms MS] [BENCHMARK...]
       deno task bench:core [same options]
  BENCHMARK      core, postgres, postgres-driver, hsm (default: all)
  --quick        seconds-long run; figures are not meaningful
  --out DIR      where results.json, results.md and the SVG charts go (default: bench-results for
                 a full run of every benchmark, bench-results/tmp for --quick or a subset)
  --rounds N     rounds per scenario and contender (default 5; --quick 1)
  --trial-ms MS  length of one round (default 1000; --quick 40)`;

const OPTIONS = {
  quick: { type: "boolean" },
  out: { type: "string" },
  rounds: { type: "string" },
  "trial-ms": { type: "string" },
} as const;

/**
 * Parses `args`; throws a {@link UsageError} naming the bad argument (or, for `--help`, with
 * exit code 0). Only a run of every benchmark writes to `bench-results/` by default, so that
 * `bench:core` or a subset never replaces the committed results of a full run with a partial
 * report.
 */
export function parseArgs(args: readonly string[]): BenchArgs {
  const { values, positionals } = parseTaskArgs(USAGE, OPTIONS, args, true);
  const known = BENCHMARKS.map((b) => b.id);
  for (const name of positionals) {
    if (!known.includes(name)) throw new UsageError(`unknown benchmark "${name}"\n${USAGE}`);
  }
  const base = values.quick ? QUICK_PLAN : FULL_PLAN;
  const whole = (flag: string, v: string | undefined) =>
    v === undefined ? undefined : wholeNumber(v, flag, USAGE);
  return {
    quick: values.quick ?? false,
    outDir: values.out ??
      (values.quick || positionals.length ? "bench-results/tmp" : "bench-results"),
    only: positionals,
    plan: {
      ...base,
      rounds: whole("--rounds", values.rounds) ?? base.rounds,
      trialMs: whole("--trial-ms", values["trial-ms"]) ?? base.trialMs,
    },
  };
}

/** Runs the benchmarks named on the command line (all by default). */
export async function main(args: readonly string[]): Promise<RunReport> {
  const parsed = parseArgs(args);
  const chosen = parsed.only.length
    ? BENCHMARKS.filter((b) => parsed.only.includes(b.id))
    : BENCHMARKS;
  return await runSuite(chosen, parsed);
}

if (import.meta.main) {
  await main(Deno.args).catch(exitOnUsageError);
}

/**
 * Command-line options shared by `deno task bench` and the single-benchmark
 * entry points (`deno task bench:core`).
 *
 * @module
 */

import { parseTaskArgs, UsageError, wholeNumber } from "../task_args.ts";
import type { RunPlan } from "./benchmark.ts";

export { exitOnUsageError, UsageError } from "../task_args.ts";

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
export const FULL_PLAN: RunPlan = { rounds: 5, trialMs: 1_000, warmupMs: 500 };
/** Quick run: proves everything works end to end, figures are not meaningful. */
export const QUICK_PLAN: RunPlan = { rounds: 1, trialMs: 40, warmupMs: 20 };

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
 * exit code 0). `wholeSuite` says the caller runs every benchmark when none is named (`deno task
 * bench`); only such a full run writes to `bench-results/` by default, so that `bench:core` or a
 * subset never replaces the committed results of a full run with a partial report.
 */
export function parseArgs(
  args: readonly string[],
  known: readonly string[],
  wholeSuite = false,
): BenchArgs {
  const { values, positionals } = parseTaskArgs(USAGE, OPTIONS, args, true);
  for (const name of positionals) {
    if (!known.includes(name)) throw new UsageError(`unknown benchmark "${name}"\n${USAGE}`);
  }
  const base = values.quick ? QUICK_PLAN : FULL_PLAN;
  const whole = (flag: string, v: string | undefined) =>
    v === undefined ? undefined : wholeNumber(v, flag, USAGE);
  return {
    quick: values.quick ?? false,
    outDir: values.out ??
      (values.quick || !wholeSuite || positionals.length ? "bench-results/tmp" : "bench-results"),
    only: positionals,
    plan: {
      ...base,
      rounds: whole("--rounds", values.rounds) ?? base.rounds,
      trialMs: whole("--trial-ms", values["trial-ms"]) ?? base.trialMs,
    },
  };
}

/**
 * Command-line options shared by `deno task bench` and the single-benchmark
 * entry points (`deno task bench:core`).
 *
 * @module
 */

import type { RunPlan } from "./benchmark.ts";

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
  BENCHMARK   core, postgres, postgres-driver, hsm (default: all)
  --quick     seconds-long run
  --out DIR   where results.json, results.md and the SVG charts go (default: bench-results for
              a full run of every benchmark, bench-results/tmp for --quick or a subset)`;

/** A bad command line (or `--help`): the message includes the usage. */
export class UsageError extends Error {
  /** 0 for `--help`, 2 for a bad argument. */
  readonly exitCode: number;
  /** Makes the error; `message` says what was wrong and ends with the usage. */
  constructor(message: string, exitCode = 2) {
    super(message);
    this.name = "UsageError";
    this.exitCode = exitCode;
  }
}

/** Prints a {@link UsageError} and exits; rethrows anything else. */
export function exitOnUsageError(error: unknown): never {
  if (!(error instanceof UsageError)) throw error;
  console.error(error.message);
  Deno.exit(error.exitCode);
}

/**
 * Parses `args`; throws a {@link UsageError} naming the bad argument. `wholeSuite` says the
 * caller runs every benchmark when none is named (`deno task bench`); only such a full run
 * writes to `bench-results/` by default, so that `bench:core` or a subset never replaces the
 * committed results of a full run with a partial report.
 */
export function parseArgs(
  args: readonly string[],
  known: readonly string[],
  wholeSuite = false,
): BenchArgs {
  let quick = false;
  let outDir: string | undefined;
  let rounds: number | undefined;
  let trialMs: number | undefined;
  const only: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const value = () => {
      const v = args[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value\n${USAGE}`);
      return v;
    };
    if (a === "--quick") quick = true;
    else if (a === "--out") outDir = value();
    else if (a === "--rounds") rounds = positive(a, value());
    else if (a === "--trial-ms") trialMs = positive(a, value());
    else if (a === "--help" || a === "-h") throw new UsageError(USAGE, 0);
    else if (known.includes(a)) only.push(a);
    else throw new UsageError(`unknown argument "${a}"\n${USAGE}`);
  }
  const base = quick ? QUICK_PLAN : FULL_PLAN;
  return {
    quick,
    outDir: outDir ?? (quick || !wholeSuite || only.length ? "bench-results/tmp" : "bench-results"),
    only,
    plan: { ...base, rounds: rounds ?? base.rounds, trialMs: trialMs ?? base.trialMs },
  };
}

function positive(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) {
    throw new UsageError(`${name} must be a positive integer, got "${v}"\n${USAGE}`);
  }
  return n;
}

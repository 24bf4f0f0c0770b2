/**
 * The command line of the evidence tools beside the benchmark (`hsm_calls.ts`, `hsm_scaling.ts`,
 * `pg_profile.ts`, `pg_reset_cost.ts`, `cpuprofile.ts`): node:util's `parseArgs`, plus `--help`,
 * and a bad argument or number answered with what was wrong and the usage (exit 2), never a
 * stack trace.
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { exitOnUsageError, UsageError } from "./cli.ts";

/** Parses `config.args` by `config`; `--help` prints `usage` and exits 0, a bad argument exits 2. */
export function toolArgs<T extends ParseArgsConfig>(
  config: T,
  usage: string,
): ReturnType<typeof parseArgs<T>> {
  const args = config.args ?? [];
  if (args.includes("--help") || args.includes("-h")) exitOnUsageError(new UsageError(usage, 0));
  try {
    return parseArgs(config);
  } catch (error) {
    return exitOnUsageError(new UsageError(`${(error as Error).message}\n${usage}`));
  }
}

/** `value` as a positive whole number, or exit 2 naming the option and the usage. */
export function wholeNumber(value: unknown, name: string, usage: string): number {
  const n = Number(value);
  if (Number.isInteger(n) && n > 0) return n;
  return exitOnUsageError(
    new UsageError(
      `${name} must be a positive whole number, got ${JSON.stringify(value)}\n${usage}`,
    ),
  );
}

/** `value` if it is one of `choices`, or exit 2 naming the option, the choices and the usage. */
export function choice<C extends string>(
  value: unknown,
  name: string,
  choices: readonly C[],
  usage: string,
): C {
  if (choices.includes(value as C)) return value as C;
  return exitOnUsageError(
    new UsageError(
      `${name} must be one of ${choices.join(", ")}, got ${JSON.stringify(value)}\n${usage}`,
    ),
  );
}

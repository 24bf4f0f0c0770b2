/**
 * The command line of every task (`deno task <name>`), parsed one way: node:util's `parseArgs`,
 * strict. `--help` (or `-h`) prints the task's usage to stdout and exits 0 before the task does
 * anything; an unknown flag or a bad value prints what was wrong and the usage to stderr and
 * exits 2, never a stack trace.
 *
 * @module
 */

import { parseArgs, type ParseArgsOptionsConfig } from "node:util";

/** A bad command line (or `--help`): the message ends with the usage. */
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

/** Prints a {@link UsageError} (`--help` to stdout, the rest to stderr) and exits; rethrows anything else. */
export function exitOnUsageError(error: unknown): never {
  if (!(error instanceof UsageError)) throw error;
  if (error.exitCode === 0) console.log(error.message);
  else console.error(error.message);
  Deno.exit(error.exitCode);
}

/** What {@link parseTaskArgs} read: flag values and, where allowed, positional arguments. */
export type TaskArgs<O extends ParseArgsOptionsConfig> = ReturnType<
  typeof parseArgs<{ options: O; allowPositionals: true; strict: true }>
>;

/**
 * Parses `args` against `options`; throws a {@link UsageError} for `--help` (exit code 0) and
 * for an unknown flag, a missing value or a positional argument where none is allowed (2).
 */
export function parseTaskArgs<O extends ParseArgsOptionsConfig>(
  usage: string,
  options: O,
  args: readonly string[] = Deno.args,
  allowPositionals = false,
): TaskArgs<O> {
  if (args.includes("--help") || args.includes("-h")) throw new UsageError(usage, 0);
  try {
    return parseArgs({ args: [...args], options, allowPositionals, strict: true }) as TaskArgs<O>;
  } catch (error) {
    const unknown = /^Unknown option '(-{1,2}[^']+)'/.exec((error as Error).message)?.[1];
    const problem = unknown === undefined
      ? (error as Error).message
      : `unknown flag ${unknown}${nearest(unknown, Object.keys(options))}`;
    throw new UsageError(`${problem}\n${usage}`);
  }
}

/** `" (did you mean --x?)"` for the known flag closest to `flag`, if one is close. */
function nearest(flag: string, known: string[]): string {
  const name = flag.replace(/^-+/, "");
  let best: { option: string; distance: number } | undefined;
  for (const option of known) {
    const distance = editDistance(name, option);
    if (distance <= 2 && (best === undefined || distance < best.distance)) {
      best = { option, distance };
    }
  }
  return best ? ` (did you mean --${best.option}?)` : "";
}

/** Levenshtein distance: insertions, deletions and substitutions. */
function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    row = next;
  }
  return row[b.length];
}

/** {@link parseTaskArgs}, exiting on `--help` or a bad command line: what a task's main calls first. */
export function taskArgs<O extends ParseArgsOptionsConfig>(
  usage: string,
  options: O,
  args: readonly string[] = Deno.args,
  allowPositionals = false,
): TaskArgs<O> {
  try {
    return parseTaskArgs(usage, options, args, allowPositionals);
  } catch (error) {
    return exitOnUsageError(error);
  }
}

/** `value` as a whole number of at least 1; else a {@link UsageError} naming `flag`. */
export function wholeNumber(value: string, flag: string, usage: string): number {
  const n = Number(value);
  if (Number.isInteger(n) && n > 0) return n;
  throw new UsageError(
    `${flag} must be a whole number of at least 1, got ${JSON.stringify(value)}\n${usage}`,
  );
}

/** `value` if it is one of `choices`; else a {@link UsageError} naming `flag` and the choices. */
export function oneOf<C extends string>(
  value: string,
  flag: string,
  choices: readonly C[],
  usage: string,
): C {
  if ((choices as readonly string[]).includes(value)) return value as C;
  throw new UsageError(
    `${flag} must be one of ${choices.join(", ")}, got ${JSON.stringify(value)}\n${usage}`,
  );
}

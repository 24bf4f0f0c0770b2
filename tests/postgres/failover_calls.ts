/**
 * Reading the record of looping callers in the failover tests: which calls succeeded, which
 * failed, and on which server a statement ran (`inet_server_port()`).
 *
 * @module
 */
import type { PostgresPool } from "../../adapters/postgres/mod.ts";
import { type Callers, type CallRecord, startCallers } from "../../tasks/setup/looping_callers.ts";

/** A statement's result that says where it ran. */
export type Where = readonly { port: number }[];

/** The statement suffix that makes a row say where it ran. */
export const WHERE = "inet_server_port() as port";

/** The calls that succeeded. */
export function succeeded<T>(calls: readonly CallRecord<T>[]): CallRecord<T>[] {
  return calls.filter((c) => !("error" in c));
}

/** The calls that failed. */
export function failed<T>(calls: readonly CallRecord<T>[]): CallRecord<T>[] {
  return calls.filter((c) => "error" in c);
}

/** The server port a successful call's statement ran on. */
export function portOf(call: CallRecord<Where>): number {
  return call.value![0].port;
}

/** Whether every one of `callers` callers has a successful call that `matches`. */
export function everyCallerHas<T>(
  calls: readonly CallRecord<T>[],
  callers: number,
  matches: (call: CallRecord<T>) => boolean,
): boolean {
  const seen = new Set(succeeded(calls).filter(matches).map((c) => c.caller));
  return seen.size === callers;
}

/** An error's name and message, and its causes' after it: for assertions and failure output. */
export function messageOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const own = `${error.name}: ${error.message}`;
  return error.cause === undefined ? own : `${own} (cause: ${messageOf(error.cause)})`;
}

/**
 * `count` callers looping on an insert into table `writes` through `pg`, each call bounded by
 * `timeoutMs`; resolves once every caller has written (dispose of them, also on failure).
 */
export async function startWriters(
  pg: PostgresPool,
  count: number,
  timeoutMs: number,
): Promise<Callers<Where>> {
  const callers = startCallers(
    count,
    (caller) =>
      pg.query<Where>(`insert into writes values ($1) returning ${WHERE}`, [caller], { timeoutMs }),
  );
  try {
    await callers.until(
      "a write by every caller",
      (calls) => everyCallerHas(calls, count, () => true),
    );
    return callers;
  } catch (error) {
    await callers[Symbol.asyncDispose]();
    throw error;
  }
}

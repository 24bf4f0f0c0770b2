/**
 * `deno task demo:failover`: a failover under load, measured. A throwaway primary with one
 * streaming standby; 20 callers write through a `read-write` pool and 5 read through a
 * `prefer-standby` pool, both given both hosts; the primary crashes (`pg_ctl stop -m immediate`),
 * and after an outage (as long as a failover manager takes to decide) the standby is promoted
 * (`pg_ctl promote`). Prints, per run, the time from `pg_ctl promote` to the first write on the new
 * primary, what failed meanwhile, and whether reads went on.
 *
 * @module
 */
import { createPostgresPool } from "../adapters/postgres/mod.ts";
import { type CallRecord, startCallers } from "./setup/looping_callers.ts";
import { startCluster } from "./setup/postgres_cluster.ts";
import { exitOnUsageError, taskArgs, wholeNumber } from "./task_args.ts";

const USAGE = `usage: deno task demo:failover [--runs N] [--writers N] [--readers N] [--outage-ms N]
                              [--deadline-ms N]
  a primary with a streaming standby, writers on a read-write pool and readers on a
  prefer-standby pool; the primary crashes, the standby is promoted; prints the time from
  pg_ctl promote to the first write on the new primary, per run, and what failed meanwhile
  --runs N        how many failovers, each on a fresh cluster (default 3)
  --writers N     callers writing through the read-write pool (default 20)
  --readers N     callers reading through the prefer-standby pool (default 5)
  --outage-ms N   time between the crash and the promotion (default 1000)
  --deadline-ms N each call's timeoutMs (default 2000)`;

const args = taskArgs(USAGE, {
  runs: { type: "string", default: "3" },
  writers: { type: "string", default: "20" },
  readers: { type: "string", default: "5" },
  "outage-ms": { type: "string", default: "1000" },
  "deadline-ms": { type: "string", default: "2000" },
});
const number = (flag: keyof typeof args.values) => {
  try {
    return wholeNumber(args.values[flag]!, `--${flag}`, USAGE);
  } catch (error) {
    return exitOnUsageError(error);
  }
};
const runs = number("runs");
const writers = number("writers");
const readers = number("readers");
const outageMs = number("outage-ms");
const deadlineMs = number("deadline-ms");

const log = (line: string) => console.error(`· ${line}`);

/** What one failover measured (ms). */
interface Failover {
  /** `pg_ctl promote` started → first write that succeeded on the new primary ended. */
  fromPromoteMs: number;
  /** `pg_ctl promote -w` itself (its wait polls: a write can come before it returns). */
  promoteMs: number;
  failedWrites: number;
  /** Failed writes by error name and code, e.g. `PostgresConnectionError CONNECTION_CLOSED`. */
  writeErrors: Map<string, number>;
  longestCallMs: number;
  reads: number;
  failedReads: number;
  /** The longest time with no read succeeding, crash to end. */
  longestReadGapMs: number;
}

async function failover(run: number): Promise<Failover> {
  log(`run ${run}: starting a primary and a standby...`);
  await using cluster = await startCluster({ standbys: 1 });
  const [primary, standby] = cluster.servers;
  await primary.admin`create table writes (n int)`;
  await cluster.replicated();
  const common = { url: cluster.url, connect_timeout: 2 } as const;
  await using writePool = createPostgresPool({
    ...common,
    targetSessionAttrs: "read-write",
    pool: { name: "writes", max: 10 },
  });
  await using readPool = createPostgresPool({
    ...common,
    targetSessionAttrs: "prefer-standby",
    pool: { name: "reads", max: 5 },
  });
  const options = { timeoutMs: deadlineMs };
  const port = "inet_server_port() as port";
  await using writes = startCallers(
    writers,
    (n) =>
      writePool.query<{ port: number }[]>(
        `insert into writes values ($1) returning ${port}`,
        [n],
        options,
      ),
  );
  await using reads = startCallers(
    readers,
    () => readPool.query<{ port: number }[]>(`select ${port}`, [], options),
  );
  await writes.until("the first writes", (calls) => calls.some((c) => !("error" in c)));
  await new Promise((r) => setTimeout(r, 500));

  log(`run ${run}: crash of the primary (${primary.host})`);
  const crashedAt = performance.now();
  await primary.stop("immediate");
  await new Promise((r) => setTimeout(r, Math.max(0, outageMs - (performance.now() - crashedAt))));
  log(`run ${run}: promoting the standby (${standby.host})`);
  const promotingAt = performance.now();
  await cluster.promote(standby);
  const promotedAt = performance.now();
  const firstWrite = (calls: readonly CallRecord<{ port: number }[]>[]) =>
    calls.find((c) => !("error" in c) && c.endMs > crashedAt && c.value![0].port === standby.port);
  await writes.until("a write on the new primary", (calls) => firstWrite(calls) !== undefined);
  await new Promise((r) => setTimeout(r, 500));
  const writeCalls = await writes.stop();
  const readCalls = await reads.stop();
  const first = firstWrite(writeCalls)!;
  const afterCrash = (c: CallRecord<unknown>) => c.endMs > crashedAt;
  const readOks = readCalls.filter((c) => afterCrash(c) && !("error" in c)).map((c) => c.endMs);
  let lastRead = crashedAt;
  let longestReadGapMs = 0;
  for (const at of [...readOks.sort((a, b) => a - b), readCalls.at(-1)?.endMs ?? crashedAt]) {
    longestReadGapMs = Math.max(longestReadGapMs, at - lastRead);
    lastRead = at;
  }
  return {
    fromPromoteMs: first.endMs - promotingAt,
    promoteMs: promotedAt - promotingAt,
    failedWrites: writeCalls.filter((c) => afterCrash(c) && "error" in c).length,
    writeErrors: countErrors(writeCalls.filter(afterCrash)),
    longestCallMs: Math.max(...[...writeCalls, ...readCalls].map((c) => c.endMs - c.startMs)),
    reads: readCalls.filter(afterCrash).length,
    failedReads: readCalls.filter((c) => afterCrash(c) && "error" in c).length,
    longestReadGapMs,
  };
}

/** How many calls failed with each error name (and code, when there is one). */
function countErrors(calls: readonly CallRecord<unknown>[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const { error } of calls.filter((c) => "error" in c)) {
    const { name, code } = error as { name?: string; code?: string };
    const key = code ? `${name} ${code}` : `${name}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

const ms = (n: number) => `${Math.round(n)} ms`;
const results: Failover[] = [];
for (let run = 1; run <= runs; run++) {
  const r = await failover(run);
  results.push(r);
  console.log(
    `run ${run}: first write on the new primary ${ms(r.fromPromoteMs)} after pg_ctl promote ` +
      `was issued (pg_ctl promote -w returned after ${ms(r.promoteMs)}); ` +
      `${r.failedWrites} writes failed meanwhile (${
        [...r.writeErrors].map(([k, n]) => `${n} ${k}`).join(", ") || "none"
      }), longest call ${ms(r.longestCallMs)} ` +
      `(deadline ${deadlineMs} ms); reads: ${r.failedReads} of ${r.reads} failed, ` +
      `longest gap ${ms(r.longestReadGapMs)}`,
  );
}
const sorted = results.map((r) => r.fromPromoteMs).sort((a, b) => a - b);
console.log(
  `\ntime from pg_ctl promote to the first write on the new primary over ${runs} run(s), ${writers} writers, ` +
    `${outageMs} ms outage: median ${ms(sorted[Math.floor((sorted.length - 1) / 2)])}, ` +
    `min ${ms(sorted[0])}, max ${ms(sorted.at(-1)!)}`,
);

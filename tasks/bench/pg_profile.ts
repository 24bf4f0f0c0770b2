/**
 * Evidence for issue 14: where each PostgreSQL contender spends its CPU at
 * one load. Runs the chosen contenders in alternating slices in one process
 * (so a noisy machine hits all alike) and prints, per contender, queries/s
 * and this process's CPU time per query (user + system, from
 * `process.cpuUsage()`; the server's CPU is not included). Run it under
 * `deno run --cpu-prof` with a single contender for a profile of it, and
 * summarise that with `tasks/bench/cpuprofile.ts`. Socket writes per query are
 * counted by wrapping `node:net`'s `Socket.prototype.write` (both drivers
 * write through it).
 *
 *   deno run -A tasks/bench/pg_profile.ts [--query select1|insert] [--callers 50]
 *     [--slices 8] [--slice-ms 500] [CONTENDER...]
 *
 * @module
 */

import net from "node:net";
import process from "node:process";
import { choice, toolArgs, wholeNumber } from "./tool_args.ts";
import type { Contender, ContenderInstance } from "./benchmark.ts";
import { acquirePgContext, type PgContext } from "./pg_context.ts";
import { openPgPool, openPostgresJs, type PgQuery, type PgScenario } from "./pg_drivers.ts";
import { barePoolContender, POOLKIT_QUERY, poolkitContender } from "./pg_poolkit.ts";

let ctx: PgContext | undefined;
const need = () => {
  if (!ctx) throw new Error("the database is not prepared");
  return ctx;
};

function driver(name: string, open: (s: PgScenario) => Promise<ContenderInstance>): Contender {
  return { name, description: name, ours: false, open: (s) => open(s as PgScenario) };
}

/** Every contender this script knows, by name. */
const CONTENDERS: Contender[] = [
  poolkitContender(need),
  poolkitContender(need, POOLKIT_QUERY, {}, "query"),
  poolkitContender(need, `${POOLKIT_QUERY} oneShotBatch 1`, { oneShotBatch: 1 }, "query"),
  poolkitContender(need, `${POOLKIT_QUERY} reset never`, { reset: "never" }, "query"),
  poolkitContender(need, `${POOLKIT_QUERY} oneShotBatch 32`, { oneShotBatch: 32 }, "query"),
  poolkitContender(need, `${POOLKIT_QUERY} oneShotBatch 1000`, { oneShotBatch: 1000 }, "query"),
  poolkitContender(need, "poolkit reset when-needed", { reset: "when-needed" }),
  poolkitContender(need, "poolkit reset never", { reset: "never" }),
  barePoolContender(need),
  barePoolContender(need, true),
  driver("postgres.js pool", (s) => openPostgresJs(need(), s)),
  driver(
    "postgres.js max_pipeline 1",
    (s) => openPostgresJs(need(), s, { options: { max_pipeline: 1 } }),
  ),
  driver("pg.Pool", (s) => openPgPool(need(), s)),
];

interface Tally {
  ops: number;
  ms: number;
  cpuUs: number;
  writes: number;
}

/** Socket writes so far (every driver's `socket.write` goes through `node:net`). */
let socketWrites = 0;
const write = net.Socket.prototype.write;
net.Socket.prototype.write = function (this: net.Socket, ...args: unknown[]) {
  socketWrites++;
  return (write as (...a: unknown[]) => boolean).apply(this, args);
} as typeof write;

/** Runs the instances in `slices` rounds of `sliceMs` each, the order rotating every round. */
async function alternate(
  open: ContenderInstance[],
  slices: number,
  sliceMs: number,
): Promise<Tally[]> {
  const tally: Tally[] = open.map(() => ({ ops: 0, ms: 0, cpuUs: 0, writes: 0 }));
  for (let slice = 0; slice < slices; slice++) {
    for (let i = 0; i < open.length; i++) {
      const k = (i + slice) % open.length;
      const before = process.cpuUsage();
      const writesBefore = socketWrites;
      const trial = await open[k].trial(sliceMs);
      const used = process.cpuUsage(before);
      tally[k].writes += socketWrites - writesBefore;
      tally[k].ops += trial.ops;
      tally[k].ms += trial.elapsedMs;
      tally[k].cpuUs += used.user + used.system;
    }
  }
  return tally;
}

const USAGE = "usage: deno run -A tasks/bench/pg_profile.ts [--query select1|insert] " +
  "[--callers 50] [--slices 8] [--slice-ms 500] [CONTENDER...]";

async function main(): Promise<void> {
  const { values, positionals } = toolArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      query: { type: "string", default: "select1" },
      callers: { type: "string", default: "50" },
      slices: { type: "string", default: "8" },
      "slice-ms": { type: "string", default: "500" },
    },
  }, USAGE);
  const query: PgQuery = choice(values.query, "--query", ["select1", "insert"], USAGE);
  const names = positionals.length ? positionals : CONTENDERS.map((c) => c.name);
  const chosen = names.map((n) => {
    const c = CONTENDERS.find((x) => x.name === n);
    if (!c) {
      throw new Error(
        `unknown contender "${n}"; known: ${CONTENDERS.map((x) => x.name)}\n${USAGE}`,
      );
    }
    return c;
  });
  const concurrency = wholeNumber(values.callers, "--callers", USAGE);
  const scenario: PgScenario = { id: "profile", label: "profile", concurrency, query };
  const { ctx: c, release } = await acquirePgContext((l) => console.error(`  ${l}`));
  ctx = c;
  const open: ContenderInstance[] = [];
  try {
    for (const contender of chosen) open.push(await contender.open(scenario));
    for (const inst of open) await inst.trial(300); // warm-up
    const slices = wholeNumber(values.slices, "--slices", USAGE);
    const sliceMs = wholeNumber(values["slice-ms"], "--slice-ms", USAGE);
    const tally = await alternate(open, slices, sliceMs);
    console.log(`${query}, ${concurrency} callers, ${slices} alternating slices of ${sliceMs} ms`);
    console.log(
      "| contender | queries | queries/s | CPU µs/query | CPU share | socket writes/query |",
    );
    console.log("|---|---:|---:|---:|---:|---:|");
    chosen.forEach((contender, k) => {
      const t = tally[k];
      console.log(
        `| ${contender.name} | ${t.ops} | ${Math.round(t.ops / (t.ms / 1000))} | ${
          (t.cpuUs / t.ops).toFixed(1)
        } | ${(t.cpuUs / 1000 / t.ms).toFixed(2)} | ${(t.writes / t.ops).toFixed(3)} |`,
      );
    });
  } finally {
    for (const inst of open) await inst.close();
    ctx = undefined;
    await release();
  }
}

if (import.meta.main) await main();

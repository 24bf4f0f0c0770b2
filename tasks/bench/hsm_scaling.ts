/**
 * Evidence for issue 13's raw-loop target: how far SoftHSM's crypto scales
 * past one thread on this machine. Runs the raw synchronous loop (the
 * `raw sync loop` contender: `*Init` then the call, one session) in one
 * thread, in N threads of this process (Deno Workers, each with its own
 * pkcs11js binding and session: one SoftHSM instance, shared by all), and
 * in N processes (a SoftHSM instance each, on the same token directory),
 * all at once for the same time; prints the total ops/s and the CPU time
 * per operation of each layout. Layouts alternate in slices, so load on the
 * machine hits them alike.
 *
 *   deno run -A tasks/bench/hsm_scaling.ts [--kind aes|ecdsa] [--n 2] [--slices 4] [--slice-ms 1000]
 *
 * @module
 */

import process from "node:process";
import { choice, toolArgs, wholeNumber } from "./tool_args.ts";
import { hsmBenchmark, need, rawSetup } from "./hsm.ts";
import { openRawLoop, openRawModule, type RawLoopSetup } from "./hsm_raw.ts";

/** What a loop in another thread or process needs (the module object is imported there). */
export type LoopSpec = Omit<RawLoopSetup, "pkcs11js"> & { ms: number };

/** One loop's result: operations, wall ms, CPU µs of its process (processes only). */
export interface LoopResult {
  ops: number;
  elapsedMs: number;
  cpuUs?: number;
}

/** Runs the raw loop of `spec` here; the module must be importable (pkcs11js built). */
export async function runLoop(spec: LoopSpec): Promise<LoopResult> {
  const loaded = await import("pkcs11js");
  const pkcs11js =
    ((loaded as { default?: unknown }).default ?? loaded) as RawLoopSetup["pkcs11js"];
  // From a parent process the payload comes as JSON: an object of indices.
  const payload = Uint8Array.from(Object.values(spec.payload) as number[]);
  const loop = openRawLoop({ ...spec, payload, pkcs11js });
  try {
    const before = process.cpuUsage();
    const trial = await loop.trial(spec.ms);
    const used = process.cpuUsage(before);
    return { ops: trial.ops, elapsedMs: trial.elapsedMs, cpuUs: used.user + used.system };
  } finally {
    await loop.close();
  }
}

function inThreads(spec: LoopSpec, n: number): Promise<LoopResult[]> {
  return Promise.all(Array.from({ length: n }, () => {
    const worker = new Worker(new URL("./hsm_scaling_worker.ts", import.meta.url), {
      type: "module",
    });
    const { promise, resolve, reject } = Promise.withResolvers<LoopResult>();
    worker.onmessage = (e) => resolve(e.data as LoopResult);
    worker.onerror = (e) => (e.preventDefault(), reject(new Error(e.message)));
    worker.postMessage(spec);
    return promise.finally(() => worker.terminate());
  }));
}

async function inProcesses(spec: LoopSpec, n: number): Promise<LoopResult[]> {
  const children = Array.from({ length: n }, () =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL(import.meta.url).pathname, "--child", JSON.stringify(spec)],
      stdout: "piped",
      stderr: "inherit",
    }).output());
  return (await Promise.all(children)).map((out) => {
    if (!out.success) throw new Error(`a loop process failed (exit ${out.code})`);
    return JSON.parse(new TextDecoder().decode(out.stdout)) as LoopResult;
  });
}

type Layout = {
  name: string;
  run: (spec: LoopSpec) => Promise<LoopResult[]>;
  cpu: "here" | "children";
};

const USAGE = "usage: deno run -A tasks/bench/hsm_scaling.ts [--kind aes|ecdsa] [--n 2] " +
  "[--slices 4] [--slice-ms 1000]";

async function main(): Promise<void> {
  const { values } = toolArgs({
    args: Deno.args,
    options: {
      child: { type: "string" },
      kind: { type: "string", default: "aes" },
      n: { type: "string", default: "2" },
      slices: { type: "string", default: "4" },
      "slice-ms": { type: "string", default: "1000" },
    },
  }, USAGE);
  if (values.child) {
    console.log(JSON.stringify(await runLoop(JSON.parse(values.child) as LoopSpec)));
    return;
  }
  const n = wholeNumber(values.n, "--n", USAGE);
  const kind = choice(values.kind, "--kind", ["aes", "ecdsa"], USAGE);
  const slices = wholeNumber(values.slices, "--slices", USAGE);
  const sliceMs = wholeNumber(values["slice-ms"], "--slice-ms", USAGE);
  const cleanup = await hsmBenchmark.prepare!();
  try {
    const { pkcs11js: _, ...setup } = rawSetup(kind);
    const spec: LoopSpec = { ...setup, payload: need().payload, ms: sliceMs };
    // Holds the module initialised and the token logged in, so no thread finalises it under another.
    const anchor = openRawModule(rawSetup(kind), 1);
    const layouts: Layout[] = [
      { name: "1 thread (the raw sync loop)", run: async (s) => [await runLoop(s)], cpu: "here" },
      { name: "1 Worker thread", run: (s) => inThreads(s, 1), cpu: "here" },
      { name: `${n} threads, one process`, run: (s) => inThreads(s, n), cpu: "here" },
      { name: `${n} processes`, run: (s) => inProcesses(s, n), cpu: "children" },
    ];
    const tally = layouts.map(() => ({ ops: 0, opsPerSec: 0, cpuUs: 0 }));
    try {
      for (let slice = 0; slice < slices; slice++) {
        for (let i = 0; i < layouts.length; i++) {
          const k = (i + slice) % layouts.length;
          const before = process.cpuUsage();
          const results = await layouts[k].run(spec);
          const used = process.cpuUsage(before);
          tally[k].ops += results.reduce((sum, r) => sum + r.ops, 0);
          tally[k].opsPerSec += results.reduce((sum, r) => sum + r.ops / (r.elapsedMs / 1000), 0);
          tally[k].cpuUs += layouts[k].cpu === "here"
            ? used.user + used.system
            : results.reduce((sum, r) => sum + (r.cpuUs ?? 0), 0);
        }
      }
    } finally {
      anchor.close();
    }
    console.log(`| ${kind} | layout | ops | ops/s (sum of loops, mean of slices) | CPU µs/op |`);
    console.log("|---|---|---:|---:|---:|");
    layouts.forEach((layout, k) => {
      const t = tally[k];
      console.log(
        `| ${kind} | ${layout.name} | ${t.ops} | ${Math.round(t.opsPerSec / slices)} | ${
          (t.cpuUs / t.ops).toFixed(1)
        } |`,
      );
    });
  } finally {
    await cleanup();
  }
}

if (import.meta.main) await main();

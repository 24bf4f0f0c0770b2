/**
 * Evidence for issue 13: what each path makes per operation. Counts the
 * calls into pkcs11js's native binding (by name; `*Callback` ones, which
 * pkcs11js's `*Async` calls end in, are hand-offs to libuv's thread pool), `crypto.getRandomValues` calls (the AES-GCM IV) and
 * messages posted to Workers, per AES-GCM encrypt and ECDSA sign, for the
 * adapter's engines and for hand-written pkcs11js `*Async` code. Then runs
 * the paths in alternating slices with 1 caller and with 32 callers (4
 * sessions), printing ops/s and the process's CPU time per operation (all
 * threads: libuv's pool and the Workers included).
 *
 *   deno run -A tasks/bench/hsm_calls.ts [--ops 2000] [--slices 6] [--slice-ms 500]
 *     [--only NAME[,NAME...] --kind aes|ecdsa --callers N]   (some paths only: one for `--cpu-prof`)
 *     [--init-call]   (only the µs of a synchronous `*Init` and call)
 *     [--slow-us N]   (with --only: every `*Init` and crypto call waits N µs, as on a network HSM)
 *
 * @module
 */

import type { Buffer } from "node:buffer";
import type Pkcs11jsTypes from "pkcs11js";
import { createHash } from "node:crypto";
import process from "node:process";
import { choice, toolArgs, wholeNumber } from "./tool_args.ts";
import type { ContenderInstance } from "./benchmark.ts";
import { hsmBenchmark, type HsmScenario, need, pooled, rawSetup } from "./hsm.ts";
import { findKey, handWrittenAsync, rawLoop } from "./hsm.ts";
import { handWrittenOp } from "./hsm_handwritten.ts";
import { openRawModule } from "./hsm_raw.ts";
import { useSlowModule } from "./hsm_slow_module.ts";
import { Pool } from "../../mod.ts";
import type { Contender } from "./benchmark.ts";
import { runCallers } from "./workers.ts";
import { EventLoopMonitor } from "./event_loop_monitor.ts";

type Counts = Map<string, number>;
const counts: Counts = new Map();
const count = (name: string) => counts.set(name, (counts.get(name) ?? 0) + 1);

/**
 * Counts every call of the binding's native `C_*` methods (pkcs11js's wrappers, its `*Async`
 * and the adapter's direct calls all end there: `C_EncryptAsync` counts as
 * `C_EncryptCallback`). Instances made while it is on capture the counting methods, so it is on
 * only while the counted paths are opened and run; returns the function that turns it off.
 */
function countNativeCalls(): () => void {
  const { pkcs11js } = need();
  const native = Object.getPrototypeOf(pkcs11js.PKCS11.prototype) as Record<string, unknown>;
  const saved = new Map<string, unknown>();
  for (const key of Object.getOwnPropertyNames(native)) {
    const fn = native[key];
    if (!key.startsWith("C_") || typeof fn !== "function") continue;
    saved.set(key, fn);
    native[key] = function (this: unknown, ...args: unknown[]) {
      count(key);
      return (fn as (...a: unknown[]) => unknown).apply(this, args);
    };
  }
  return () => {
    for (const [key, fn] of saved) native[key] = fn;
  };
}

/** Counts IVs drawn and messages posted to Workers; returns the function that stops it. */
function countGlobalHandOffs(): () => void {
  const original = crypto.getRandomValues;
  const random = original.bind(crypto) as (a: unknown) => unknown;
  crypto.getRandomValues = ((array: unknown) => {
    count("crypto.getRandomValues");
    return random(array);
  }) as typeof crypto.getRandomValues;
  const post = Worker.prototype.postMessage;
  Worker.prototype.postMessage = function (this: Worker, ...args: unknown[]) {
    count("Worker.postMessage");
    return (post as (...a: unknown[]) => void).apply(this, args);
  } as typeof post;
  return () => {
    crypto.getRandomValues = original;
    Worker.prototype.postMessage = post;
  };
}

/** Runs `n` ops from `callers` concurrent callers; returns the counts per op. */
async function perOp(n: number, callers: number, op: () => Promise<unknown>) {
  let left = callers * 8; // warm-up: sessions created, first-call costs paid
  const caller = async () => {
    while (left-- > 0) await op();
  };
  await Promise.all(Array.from({ length: callers }, caller));
  counts.clear();
  left = n;
  await Promise.all(Array.from({ length: callers }, caller));
  return [...counts].map(([name, c]) => `${name} ${(c / n).toFixed(2)}`).join(", ");
}

async function adapterCounts(
  engine: "auto" | "async" | "workers",
  kind: "aes" | "ecdsa",
  n: number,
) {
  const { adapter, tokenLabel, pin, payload } = need();
  const hsm = await adapter.openHsm({ tokenLabel, pin, engine, pool: { max: 4, min: 4 } });
  try {
    const key = await hsm.use((s) => findKey(s, kind));
    const op = kind === "aes"
      ? () => hsm.ops.encrypt(key, payload)
      : () => hsm.ops.sign(key, payload);
    return [await perOp(n, 1, op), await perOp(n, 32, op)];
  } finally {
    await hsm.close();
  }
}

async function handWrittenCounts(kind: "aes" | "ecdsa", n: number) {
  const setup = rawSetup(kind);
  const m = openRawModule(setup, 1);
  try {
    const op = handWrittenOp(setup, m, []);
    return [await perOp(n, 1, () => op(m.sessions[0], 0))];
  } finally {
    m.close();
  }
}

/**
 * A layer between hand-written code and the adapter: the core `Pool` (no validate) lending 4 raw
 * sessions to the scenario's callers, each op the hand-written one. What the pool alone costs.
 */
const poolOverRaw: Contender = {
  name: "Pool + raw sessions ×4",
  description: "core Pool, max 4, over raw pkcs11js sessions; hand-written op",
  ours: true,
  open(s) {
    const { op: kind, concurrency } = s as HsmScenario;
    const setup = rawSetup(kind);
    const m = openRawModule(setup, 4);
    const op = handWrittenOp(setup, m, []);
    let next = 0;
    const pool = new Pool<number>({ max: 4, create: () => Promise.resolve(next++) });
    const run = () => pool.use((slot) => op(m.sessions[slot], slot));
    return Promise.resolve({
      trial: (ms: number) => runCallers(concurrency, ms, run, true),
      close: async () => {
        await pool.close();
        m.close();
      },
    });
  },
};

/** µs per synchronous `C_GetSessionInfo` (what the pool's validate makes per acquire). */
function sessionInfoUs(): number {
  const m = openRawModule(rawSetup("aes"), 1);
  try {
    const t0 = performance.now();
    for (let i = 0; i < 20_000; i++) m.p.C_GetSessionInfo(m.sessions[0]);
    return (performance.now() - t0) * 1000 / 20_000;
  } finally {
    m.close();
  }
}

/**
 * p50 and p99 µs of a synchronous `*Init` and of the synchronous call after it, on one session
 * (3,000 of each, after 200 to warm up): what a lone operation costs the calling thread when its
 * call runs there, and how the inline engine's 100 µs bound compares.
 */
function initAndCallUs(kind: "aes" | "ecdsa"): string {
  const setup = rawSetup(kind);
  const m = openRawModule(setup, 1);
  try {
    const { pkcs11js } = setup;
    const [session, p] = [m.sessions[0], m.p];
    const iv = new Uint8Array(12), out = new Uint8Array(2048);
    const data = kind === "aes"
      ? setup.payload
      : createHash("sha256").update(setup.payload).digest();
    const gcm = { type: pkcs11js.CK_PARAMS_AES_GCM, iv, tagBits: 128 } as Pkcs11jsTypes.IParams;
    const init = kind === "aes"
      ? () => p.C_EncryptInit(session, { mechanism: pkcs11js.CKM_AES_GCM, parameter: gcm }, m.key)
      : () => p.C_SignInit(session, { mechanism: pkcs11js.CKM_ECDSA }, m.key);
    const call = kind === "aes"
      ? () => p.C_Encrypt(session, data as Buffer, out as Buffer)
      : () => p.C_Sign(session, data as Buffer, out as Buffer);
    const inits: number[] = [], calls: number[] = [];
    for (let i = 0; i < 3200; i++) {
      const t0 = performance.now();
      init();
      const t1 = performance.now();
      call();
      if (i >= 200) inits.push((t1 - t0) * 1000), calls.push((performance.now() - t1) * 1000);
    }
    const q = (a: number[], f: number) => a.sort((x, y) => x - y)[Math.floor(a.length * f)];
    const over = (a: number[]) => a.filter((us) => us >= 100).length;
    return `${kind}: *Init p50 ${q(inits, 0.5).toFixed(1)} µs, p99 ${
      q(inits, 0.99).toFixed(1)
    } µs` +
      ` (${over(inits)} of 3000 ≥ 100 µs); call p50 ${q(calls, 0.5).toFixed(1)} µs, p99 ` +
      `${q(calls, 0.99).toFixed(1)} µs (${over(calls)} ≥ 100 µs)`;
  } finally {
    m.close();
  }
}

/** Alternating slices of the given contenders; ops/s and CPU µs per op. */
async function timed(
  kind: "aes" | "ecdsa",
  callers: number,
  slices: number,
  sliceMs: number,
  only?: string,
) {
  const scenario: HsmScenario = { id: "x", label: "x", concurrency: callers, op: kind };
  const usual = [
    pooled("default", 4),
    pooled("async", 4),
    // Experiment: validate (one C_GetSessionInfo) on every acquire, as before the 1 s default.
    pooled("async", 4, undefined, { validateAfterMs: 0 }),
    pooled("workers", 4),
    poolOverRaw,
    handWrittenAsync,
  ];
  // Only with --only: more worker threads, and the raw loop itself.
  const more = [pooled("workers", 4, 2), pooled("default", 4, 2), pooled("workers", 4, 4), rawLoop];
  const lineup = only ? [...usual, ...more].filter((c) => only.split(",").includes(c.name)) : usual;
  const tally = lineup.map(() => ({ ops: 0, ms: 0, cpuUs: 0, late: [] as number[] }));
  for (let slice = 0; slice < slices; slice++) {
    for (let i = 0; i < lineup.length; i++) {
      const k = (i + slice) % lineup.length;
      // Opened per slice, as in the benchmark: each path owns the module while it runs.
      const inst: ContenderInstance = await lineup[k].open(scenario);
      try {
        const before = process.cpuUsage();
        const monitor = new EventLoopMonitor();
        monitor.start();
        const trial = await inst.trial(sliceMs);
        tally[k].late.push(...monitor.stop());
        const used = process.cpuUsage(before);
        tally[k].ops += trial.ops;
        tally[k].ms += trial.elapsedMs;
        tally[k].cpuUs += used.user + used.system;
      } finally {
        await inst.close();
      }
    }
  }
  return lineup.map((c, k) => {
    const t = tally[k];
    const lateP99 = t.late.sort((a, b) => a - b)[Math.floor(t.late.length * 0.99)] ?? NaN;
    return `| ${kind} | ${callers} | ${c.name} | ${t.ops} | ${
      Math.round(t.ops / (t.ms / 1000))
    } | ${(t.cpuUs / t.ops).toFixed(1)} | ${lateP99.toFixed(2)} |`;
  });
}

/**
 * Experiment: every path of this run goes through `native/slow_pkcs11.c` (see
 * `hsm_slow_module.ts`), whose `*Init` and crypto calls wait `us` µs first.
 */
async function slowDown(us: number): Promise<void> {
  const env = need();
  const out = await useSlowModule(env.library, us);
  Deno.env.set("PKCS11_MODULE", out); // the adapter's default module
  env.library = out; // the raw contenders'
  console.log(`every *Init and crypto call waits ${us} µs first (${out} in front of SoftHSM)`);
}

const USAGE = "usage: deno run -A tasks/bench/hsm_calls.ts [--ops 2000] [--slices 6] " +
  "[--slice-ms 500] [--only NAME[,NAME...] --kind aes|ecdsa --callers N] [--init-call] [--slow-us N]";

async function main(): Promise<void> {
  const { values } = toolArgs({
    args: Deno.args,
    options: {
      ops: { type: "string", default: "2000" },
      slices: { type: "string", default: "6" },
      "slice-ms": { type: "string", default: "500" },
      only: { type: "string" },
      kind: { type: "string", default: "aes" },
      callers: { type: "string", default: "32" },
      "init-call": { type: "boolean", default: false },
      "slow-us": { type: "string" },
    },
  }, USAGE);
  const n = wholeNumber(values.ops, "--ops", USAGE);
  const slices = wholeNumber(values.slices, "--slices", USAGE);
  const sliceMs = wholeNumber(values["slice-ms"], "--slice-ms", USAGE);
  const callers = wholeNumber(values.callers, "--callers", USAGE);
  const kind = choice(values.kind, "--kind", ["aes", "ecdsa"], USAGE);
  const cleanup = await hsmBenchmark.prepare!();
  try {
    if (values["slow-us"]) await slowDown(wholeNumber(values["slow-us"], "--slow-us", USAGE));
    if (values.only) {
      console.log((await timed(kind, callers, slices, sliceMs, values.only)).join("\n"));
      return;
    }
    console.log(`sync C_GetSessionInfo: ${sessionInfoUs().toFixed(2)} µs per call (20,000 calls)`);
    for (const kind of ["aes", "ecdsa"] as const) console.log(`sync ${initAndCallUs(kind)}`);
    console.log("");
    if (values["init-call"]) return;
    const restoreGlobals = countGlobalHandOffs();
    const stopCounting = countNativeCalls();
    try {
      console.log(
        "| op | path | calls per operation, 1 caller | calls per operation, 32 callers |",
      );
      console.log("|---|---|---|---|");
      for (const kind of ["aes", "ecdsa"] as const) {
        for (const engine of ["auto", "async", "workers"] as const) {
          const [one, many] = await adapterCounts(engine, kind, n);
          console.log(`| ${kind} | adapter "${engine}" ×4 | ${one} | ${many} |`);
        }
        const [one] = await handWrittenCounts(kind, n);
        console.log(`| ${kind} | hand-written *Async | ${one} | (same per op) |`);
      }
    } finally {
      stopCounting();
      restoreGlobals();
    }
    console.log(
      "\n| op | callers | path | ops | ops/s | CPU µs/op (all threads) | timer late p99 ms |",
    );
    console.log("|---|---:|---|---:|---:|---:|---:|");
    for (const kind of ["aes", "ecdsa"] as const) {
      for (const callers of [1, 32]) {
        const rows = await timed(kind, callers, slices, sliceMs);
        console.log(rows.join("\n"));
      }
    }
  } finally {
    await cleanup();
  }
}

if (import.meta.main) await main();

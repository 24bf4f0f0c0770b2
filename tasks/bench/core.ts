/**
 * `deno task bench core` (or `bench:core`): the pool's own overhead. Acquire+release of an
 * already idle fake resource, with 1 caller and with 100 concurrent callers
 * on `max: 10`, for our Pool, npm:generic-pool and npm:tarn.
 *
 * @module
 */

import { createPool as createGenericPool } from "generic-pool";
import tarn from "tarn";
import { Pool } from "../../mod.ts";
import {
  type Benchmark,
  callersOf,
  type Contender,
  runCallers,
  type Scenario,
} from "./benchmark.ts";
import { coreTargets } from "./targets.ts";

const MAX = 10;

/** A resource that costs nothing to make: the benchmark measures only the pool. */
interface FakeResource {
  id: number;
}

let nextId = 0;
const makeFake = (): Promise<FakeResource> => Promise.resolve({ id: ++nextId });

/** Runs `op` from the scenario's callers, reading the clock every few ops, not timing each. */
const instance = (op: () => Promise<unknown>, close: () => Promise<void>, s: Scenario) =>
  callersOf(s.concurrency, op, close, { timed: false });

/** Takes every resource once so that all `MAX` exist and sit idle before measuring. */
async function warm<T>(acquire: () => Promise<T>, release: (r: T) => unknown): Promise<void> {
  const held = await Promise.all(Array.from({ length: MAX }, acquire));
  for (const r of held) await release(r);
}

/** Our pool, each op `acquire()` then `lease.release()`, or one `pool.use(fn)`. */
function poolkit(name: string, description: string, api: "acquire" | "use"): Contender {
  return {
    name,
    description,
    ours: true,
    async open(scenario) {
      const pool = new Pool<FakeResource>({ create: makeFake, max: MAX });
      await warm(() => pool.acquire(), (l) => l.release());
      const fn = (r: FakeResource) => r.id;
      const op = api === "use" ? () => pool.use(fn) : async () => {
        const lease = await pool.acquire();
        await lease.release();
      };
      return instance(op, () => pool.close(), scenario);
    },
  };
}

/**
 * Our pool with `instrumentPool()` (OpenTelemetry), measured two ways. Each
 * trial ends with a flush, which hands every timing counted in the trial over
 * for recording:
 * - `poolkit + otel`: the event loop's cost. The trial ends at the hand-over;
 *   without `OTEL_DENO=true` (a no-op meter) or with another meter provider,
 *   the recording itself is done in the flush, so it is included.
 * - `poolkit + otel, recorded`: the trial also waits until every value is in
 *   the histograms. With `OTEL_DENO=true` that includes the recording thread
 *   catching up: the throughput the whole export sustains.
 */
function poolkitOtel(name: string, waitForRecording: boolean): Contender {
  return {
    name,
    description: waitForRecording
      ? "`poolkit + otel`, each trial ending once every value is in the histograms " +
        "(with OTEL_DENO=true: once the recording thread has caught up)."
      : "`poolkit` with `instrumentPool(pool)` (OpenTelemetry): the event loop's cost; with " +
        "OTEL_DENO=true the values are recorded on a thread of their own, otherwise here.",
    ours: true,
    async open(scenario) {
      const { instrumentPool } = await import("../../otel/mod.ts");
      const pool = new Pool<FakeResource>({ create: makeFake, max: MAX, name: `otel-${++nextId}` });
      const otel = instrumentPool(pool);
      await warm(() => pool.acquire(), (l) => l.release());
      otel.flush();
      await otel.settled();
      const op = async () => {
        const lease = await pool.acquire();
        await lease.release();
      };
      return {
        async trial(durationMs) {
          const trial = await runCallers(scenario.concurrency, durationMs, op, false);
          const start = performance.now();
          otel.flush();
          if (waitForRecording) await otel.settled();
          return { ...trial, elapsedMs: trial.elapsedMs + performance.now() - start };
        },
        async close() {
          otel.stop();
          await otel.settled();
          await pool.close();
        },
      };
    },
  };
}

const genericPool: Contender = {
  name: "generic-pool",
  description: "npm:generic-pool: `await pool.acquire()` then `await pool.release(r)`.",
  ours: false,
  async open(scenario) {
    const pool = createGenericPool<FakeResource>(
      { create: makeFake, destroy: () => Promise.resolve() },
      { max: MAX, min: 0 },
    );
    await warm(() => pool.acquire(), (r) => pool.release(r));
    return instance(async () => {
      const r = await pool.acquire();
      await pool.release(r);
    }, async () => {
      await pool.drain();
      await pool.clear();
    }, scenario);
  },
};

const tarnPool: Contender = {
  name: "tarn",
  description: "npm:tarn: `await pool.acquire().promise` then `pool.release(r)`.",
  ours: false,
  async open(scenario) {
    const pool = new tarn.Pool<FakeResource>({
      create: makeFake,
      destroy: () => {},
      min: 0,
      max: MAX,
    });
    await warm(() => pool.acquire().promise, (r) => pool.release(r));
    return instance(
      async () => {
        const r = await pool.acquire().promise;
        pool.release(r);
      },
      async () => void await pool.destroy(),
      scenario,
    );
  },
};

const scenarios: Scenario[] = [
  { id: "1-caller", label: "1 caller, max 10", concurrency: 1 },
  { id: "100-callers", label: "100 callers, max 10", concurrency: 100 },
];

/** The pool-overhead benchmark: acquire+release of an idle resource against generic-pool and tarn. */
export const coreBenchmark: Benchmark = {
  id: "core",
  title: "Pool overhead: acquire+release of an idle resource",
  measures:
    "Measures µs per acquire+release of an already idle fake resource (no I/O), 1 and 100 callers on max 10: the pool's own cost.",
  primary: "usPerOp",
  monitorsEventLoop: false,
  lifetime: "scenario",
  scenarios,
  contenders: [
    poolkit(
      "poolkit",
      "this package's `Pool`: `await using`-style `acquire()` then `lease.release()`.",
      "acquire",
    ),
    poolkit(
      "poolkit use()",
      "the same pool through `pool.use(fn)` (acquire, call, release in one call).",
      "use",
    ),
    poolkitOtel("poolkit + otel", false),
    poolkitOtel("poolkit + otel, recorded", true),
    genericPool,
    tarnPool,
  ],
  targets: coreTargets(scenarios),
  notes: [
    "With 100 callers, µs/op is wall time divided by completed acquire+release pairs " +
    "(the pool's cost per handed-out lease under contention), not a caller's latency.",
  ],
};

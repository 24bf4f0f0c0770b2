/**
 * `deno task concurrency`: what a pool does, and what a leaked connection does, under load.
 *
 * 10, 20 and 50 concurrent workers insert orders through a pool of max 5 connections, in two
 * modes: `release` (every worker gives its connection back through `await using`) and `leaky`
 * (workers forget to). The leaky runs end in PoolTimeoutErrors within the acquire timeout and
 * in leak reports naming the line that acquired and never released; nothing hangs.
 *
 * Uses DATABASE_URL, or a throwaway PostgreSQL started and removed for this run.
 *
 * @module
 */
import {
  createPostgresPool,
  type PostgresClient,
  type PostgresPool,
} from "../adapters/postgres/mod.ts";
import type { PoolEvent } from "../mod.ts";
import { OrderDao } from "./orders/order_dao.ts";
import { startDatabase } from "./setup/postgres.ts";

const WORKER_COUNTS = [10, 20, 50];
const MODES = ["release", "leaky"] as const;
type Mode = typeof MODES[number];
const CALLS_PER_WORKER = 3;
const POOL_MAX = 5;
const ACQUIRE_TIMEOUT_MS = 1_000;
const LEAK_DETECTION_MS = 300;

/** What one run measured. */
interface RunResult {
  workers: number;
  mode: Mode;
  succeeded: number;
  failed: Map<string, number>;
  latenciesMs: number[];
  totalMs: number;
  leaks: { id: number; heldMs: number; site: string }[];
  exampleError?: string;
  rowsInTable: number;
}

const err = (line: string) => console.error(line);
await using db = await startDatabase({ log: (l) => err(`· ${l}`) });
const table = db.table("pedido");
{
  await using pg = createPostgresPool({ url: db.url });
  await new OrderDao(pg, table).ensureTable();
}
console.log(
  `${WORKER_COUNTS.join("/")} workers × ${CALLS_PER_WORKER} inserts each, pool max ${POOL_MAX}, ` +
    `acquire timeout ${ACQUIRE_TIMEOUT_MS} ms, leak detection after ${LEAK_DETECTION_MS} ms\n`,
);

const results: RunResult[] = [];
for (const workers of WORKER_COUNTS) {
  for (const mode of MODES) {
    const result = await run(workers, mode);
    results.push(result);
    console.log(renderTable([result]));
    for (const leak of result.leaks) {
      console.log(
        `  leak: connection #${leak.id} held ${Math.round(leak.heldMs)} ms without release, ` +
          `acquired at ${leak.site}`,
      );
    }
    if (result.exampleError) console.log(`  e.g. ${result.exampleError}`);
    console.log(
      `  rows inserted: ${result.rowsInTable} (= succeeded: ${
        result.rowsInTable === result.succeeded ? "yes" : "NO"
      })\n`,
    );
  }
}
console.log("all runs\n" + renderTable(results));

/** One run: `workers` workers in `mode`, on a fresh pool, closed afterwards. */
async function run(workers: number, mode: Mode): Promise<RunResult> {
  const pg = createPostgresPool({
    url: db.url,
    pool: {
      name: `${mode}-${workers}`,
      max: POOL_MAX,
      acquireTimeoutMs: ACQUIRE_TIMEOUT_MS,
      leakDetectionMs: LEAK_DETECTION_MS,
    },
  });
  const marker = `${mode}-${workers}-${crypto.randomUUID().slice(0, 8)}`;
  const result: RunResult = {
    workers,
    mode,
    succeeded: 0,
    failed: new Map(),
    latenciesMs: [],
    totalMs: 0,
    leaks: [],
    rowsInTable: 0,
  };
  const leaksDone = collectLeaks(pg, result);
  const progress = startProgress(
    `${workers} workers, ${mode}`,
    workers * CALLS_PER_WORKER,
    () => result.latenciesMs.length,
  );
  const started = performance.now();
  const worker = mode === "release" ? releasingWorker : leakyWorker;
  await Promise.all(Array.from({ length: workers }, (_, w) => worker(pg, w, marker, result)));
  result.totalMs = performance.now() - started;
  progress.stop();
  // Leaked leases are never coming back: give them a moment, then close destroys them.
  await pg.close({ timeoutMs: mode === "leaky" ? 200 : 5_000 });
  await leaksDone;
  {
    await using check = createPostgresPool({ url: db.url, pool: { max: 1 } });
    const [{ n }] = await check.use((sql) =>
      sql<{ n: number }[]>`select count(*)::int as n from ${sql(table)}
        where descripcion = ${marker}`
    );
    result.rowsInTable = n;
  }
  return result;
}

/** The right way: the lease is released at the end of the block, whatever happens. */
async function releasingWorker(pg: PostgresPool, w: number, marker: string, r: RunResult) {
  for (let i = 0; i < CALLS_PER_WORKER; i++) {
    const t0 = performance.now();
    try {
      await using lease = await pg.pool.acquire();
      await insertOrder(lease.resource.client, w, marker);
      r.succeeded++;
    } catch (error) {
      recordFailure(r, error);
    }
    r.latenciesMs.push(performance.now() - t0);
  }
}

/** The bug this demo is about: acquire, use, and forget to release. */
async function leakyWorker(pg: PostgresPool, w: number, marker: string, r: RunResult) {
  for (let i = 0; i < CALLS_PER_WORKER; i++) {
    const t0 = performance.now();
    try {
      const lease = await pg.pool.acquire(); // never released: this line leaks
      await insertOrder(lease.resource.client, w, marker);
      r.succeeded++;
    } catch (error) {
      recordFailure(r, error);
    }
    r.latenciesMs.push(performance.now() - t0);
  }
}

async function insertOrder(sql: PostgresClient, w: number, marker: string): Promise<void> {
  await sql`insert into ${sql(table)} (cliente, descripcion, fecha_pedido)
    values (${`worker ${w}`}, ${marker}, current_date)`;
}

function recordFailure(r: RunResult, error: unknown): void {
  const name = error instanceof Error ? error.name : typeof error;
  r.failed.set(name, (r.failed.get(name) ?? 0) + 1);
  r.exampleError ??= error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** Collects the pool's leak events, naming the caller's line from the acquire-site stack. */
async function collectLeaks(pg: PostgresPool, r: RunResult): Promise<void> {
  for await (const event of pg.pool.events() as AsyncIterable<PoolEvent>) {
    if (event.type === "leak") {
      r.leaks.push({ id: event.id, heldMs: event.heldMs, site: callSite(event.stack) });
    }
  }
}

/** The first stack frame outside the pool: where the leaking `acquire()` was called. */
function callSite(stack: string): string {
  const frames = stack.split("\n").slice(1).map((l) => l.trim().replace(/^at /, ""));
  const frame = frames.find((f) => !f.includes("/pool/") && !f.startsWith("ext:")) ?? frames[0];
  return (frame ?? "unknown").replace(`file://${Deno.cwd()}/`, "");
}

function renderTable(rows: RunResult[]): string {
  const head = ["workers", "mode", "succeeded", "failed", "mean ms", "p95 ms", "total s", "leaks"];
  const body = rows.map((r) => {
    const failed = [...r.failed].map(([name, n]) => `${n} ${name}`).join(", ") || "0";
    return [
      String(r.workers),
      r.mode,
      String(r.succeeded),
      failed,
      mean(r.latenciesMs).toFixed(1),
      percentile(r.latenciesMs, 0.95).toFixed(1),
      (r.totalMs / 1000).toFixed(2),
      String(r.leaks.length),
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const numeric = new Set([0, 2, 4, 5, 6, 7]);
  const line = (cells: string[]) =>
    "| " +
    cells.map((c, i) => numeric.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i])).join(" | ") +
    " |";
  const rule = "|" +
    widths.map((w, i) => numeric.has(i) ? "-".repeat(w + 1) + ":" : "-".repeat(w + 2)).join("|") +
    "|";
  return [line(head), rule, ...body.map(line)].join("\n");
}

function mean(xs: number[]): number {
  return xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length;
}

function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return 0;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];
}

/** A one-line progress bar on stderr (redrawn on a terminal, start/end lines otherwise). */
function startProgress(label: string, total: number, done: () => number): { stop(): void } {
  const tty = Deno.stderr.isTerminal();
  const started = performance.now();
  const encoder = new TextEncoder();
  const draw = (final: boolean) => {
    const n = done();
    const width = 24;
    const filled = Math.round((n / total) * width);
    const bar = "█".repeat(filled) + "░".repeat(width - filled);
    const secs = ((performance.now() - started) / 1000).toFixed(1);
    const text = `  ${label.padEnd(20)} ${bar} ${String(n).padStart(4)}/${total} calls  ${secs} s`;
    if (tty) Deno.stderr.writeSync(encoder.encode(`\r${text}${final ? "\n" : ""}`));
    else if (final) err(text);
  };
  if (!tty) err(`  ${label}: running...`);
  const timer = tty ? setInterval(() => draw(false), 100) : undefined;
  return {
    stop() {
      clearInterval(timer);
      draw(true);
    },
  };
}

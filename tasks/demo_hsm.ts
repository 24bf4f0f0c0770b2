/**
 * `deno task demo:hsm`: many concurrent workers doing HSM crypto, run twice
 * on the same work: with the session pool, and the per-request way (load
 * and initialise the module, open a session, log in, operate, log out,
 * close, finalise, for every operation). Prints the total time of each
 * (including closing), ops/s, p50/p99 latency and the speed-up.
 *
 *   deno task demo:hsm [--workers 16] [--ops 2000] [--pool 4] [--op mixed|aes|sign]
 *                      [--per-request-ops 400]
 *
 * Runs on the private SoftHSM2 token that `tasks/setup/softhsm.ts` makes
 * (building pkcs11js first if needed); nothing to set up by hand.
 *
 * @module
 */
import { ensurePkcs11js } from "./setup/pkcs11js.ts";
import { provisionSoftHsm } from "./setup/softhsm.ts";
import { exitOnUsageError, oneOf, parseTaskArgs, wholeNumber } from "./task_args.ts";

const USAGE = `usage: deno task demo:hsm [--workers N] [--ops N] [--pool N] [--op mixed|aes|sign]
                          [--per-request-ops N]
  --workers N           concurrent workers (default 16)
  --ops N               operations through the pool (default 2000)
  --pool N              sessions in the pool at most (default 4)
  --op KIND             mixed (default), aes (AES-256-GCM encrypt) or sign (ECDSA P-256)
  --per-request-ops N   operations the per-request way (default: a fifth of --ops, at least 200)`;

interface Flags {
  workers: number;
  ops: number;
  pool: number;
  op: "mixed" | "aes" | "sign";
  perRequestOps: number;
}

function parseFlags(args: string[]): Flags {
  const { values } = parseTaskArgs(USAGE, {
    workers: { type: "string", default: "16" },
    ops: { type: "string", default: "2000" },
    pool: { type: "string", default: "4" },
    op: { type: "string", default: "mixed" },
    "per-request-ops": { type: "string" },
  }, args);
  const ops = wholeNumber(values.ops, "--ops", USAGE);
  const perRequest = values["per-request-ops"];
  return {
    workers: wholeNumber(values.workers, "--workers", USAGE),
    ops,
    pool: wholeNumber(values.pool, "--pool", USAGE),
    op: oneOf(values.op, "--op", ["mixed", "aes", "sign"], USAGE),
    // The per-request way is slow; by default it runs a fifth of the work (at least 200 ops).
    perRequestOps: perRequest === undefined
      ? Math.min(ops, Math.max(200, ops / 5))
      : wholeNumber(perRequest, "--per-request-ops", USAGE),
  };
}

let flags: Flags;
try {
  flags = parseFlags(Deno.args);
} catch (error) {
  exitOnUsageError(error);
}

await ensurePkcs11js();
const env = await provisionSoftHsm();
// Loaded after the build: the adapter needs pkcs11js's native addon.
const { openHsm } = await import("../adapters/pkcs11/mod.ts");
const { withPerRequestSession } = await import("./bench/hsm_per_request.ts");
type HsmSession = import("../adapters/pkcs11/mod.ts").HsmSession;

const AES_LABEL = "demo-aes";
const EC_LABEL = "demo-ec";
const payload = crypto.getRandomValues(new Uint8Array(1024));

/** One unit of work, the same in both runs: look the key up by label, then operate. */
async function work(session: HsmSession, i: number): Promise<void> {
  const sign = flags.op === "sign" || (flags.op === "mixed" && i % 2 === 1);
  if (sign) {
    const key = session.findRandomKey(EC_LABEL, "ec-private");
    if (!key) throw new Error(`no key "${EC_LABEL}"`);
    await session.sign(key, payload);
  } else {
    const key = session.findRandomKey(AES_LABEL, "aes");
    if (!key) throw new Error(`no key "${AES_LABEL}"`);
    await session.encrypt(key, payload);
  }
}

// --- progress display -------------------------------------------------------
const isTty = Deno.stderr.isTerminal();
const encoder = new TextEncoder();
function progress(label: string, done: number, total: number, startedAt: number): void {
  const width = 30;
  const filled = Math.round((done / total) * width);
  const seconds = (performance.now() - startedAt) / 1000;
  const rate = seconds > 0 ? done / seconds : 0;
  const line = `${label.padEnd(12)} [${"#".repeat(filled)}${".".repeat(width - filled)}] ` +
    `${String(done).padStart(6)}/${total} ops  ${rate.toFixed(0).padStart(6)} ops/s`;
  Deno.stderr.writeSync(encoder.encode(isTty ? `\r${line}` : `${line}\n`));
}

interface RunResult {
  mode: string;
  ops: number;
  totalMs: number;
  latencies: number[];
}

async function runWorkers(
  mode: string,
  ops: number,
  operate: (i: number) => Promise<void>,
  closing: () => Promise<void>,
): Promise<RunResult> {
  const latencies: number[] = [];
  let next = 0;
  let done = 0;
  const startedAt = performance.now();
  const step = Math.max(1, Math.floor(ops / (isTty ? 100 : 4)));
  progress(mode, 0, ops, startedAt);
  const worker = async () => {
    while (next < ops) {
      const i = next++;
      const t0 = performance.now();
      await operate(i);
      latencies.push(performance.now() - t0);
      if (++done % step === 0 && done < ops) progress(mode, done, ops, startedAt);
    }
  };
  await Promise.all(Array.from({ length: flags.workers }, worker));
  await closing();
  const totalMs = performance.now() - startedAt;
  progress(mode, done, ops, startedAt);
  if (isTty) Deno.stderr.writeSync(encoder.encode("\n"));
  return { mode, ops, totalMs, latencies };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

// --- the keys both runs use (token objects, made once) -----------------------
{
  await using hsm = await openHsm({ tokenLabel: env.tokenLabel, pin: env.pin, pool: { max: 1 } });
  await hsm.use(async (s) => {
    if (!s.findRandomKey(AES_LABEL)) await s.generateAesKey({ label: AES_LABEL });
    if (!s.findRandomKey(EC_LABEL, "ec-private")) await s.generateEcKeyPair({ label: EC_LABEL });
  });
}

console.error(
  `demo:hsm: ${flags.workers} workers, ${flags.op} ops on 1 KiB (AES-256-GCM encrypt / ` +
    `ECDSA P-256 sign), token "${env.tokenLabel}" (private SoftHSM2 in .local/softhsm)\n` +
    `  pooled:      ${flags.ops} ops on a pool of ${flags.pool} sessions\n` +
    `  per request: ${flags.perRequestOps} ops, each with init, open, login, op, logout, close, ` +
    `finalize (serialised: module state and login are process-wide)\n`,
);

const pooledStart = performance.now();
const hsm = await openHsm({
  tokenLabel: env.tokenLabel,
  pin: env.pin,
  pool: { max: flags.pool },
});
const pooled = await runWorkers(
  "pooled",
  flags.ops,
  (i) => hsm.use((s) => work(s, i)),
  () => hsm.close(),
);
pooled.totalMs = performance.now() - pooledStart; // includes opening the module, logging in and closing

const perRequestOptions = {
  tokenLabel: env.tokenLabel,
  pin: env.pin,
};
const perRequest = await runWorkers(
  "per request",
  flags.perRequestOps,
  (i) => withPerRequestSession(perRequestOptions, (s) => work(s, i)),
  () => Promise.resolve(),
);

// --- the table -----------------------------------------------------------------
const rows = [pooled, perRequest].map((r) => {
  const sorted = [...r.latencies].sort((a, b) => a - b);
  const opsPerSec = r.ops / (r.totalMs / 1000);
  return {
    mode: r.mode,
    ops: String(r.ops),
    total: `${(r.totalMs / 1000).toFixed(2)} s`,
    rate: opsPerSec.toFixed(0),
    p50: `${percentile(sorted, 50).toFixed(2)} ms`,
    p99: `${percentile(sorted, 99).toFixed(2)} ms`,
    opsPerSec,
  };
});
const speedUp = rows[0].opsPerSec / rows[1].opsPerSec;
const header = ["mode", "ops", "total incl. close", "ops/s", "p50", "p99", "speed-up"];
const table = rows.map((r, i) => [
  r.mode,
  r.ops,
  r.total,
  r.rate,
  r.p50,
  r.p99,
  i === 0 ? `${speedUp.toFixed(1)}x` : "1.0x",
]);
const widths = header.map((h, c) => Math.max(h.length, ...table.map((row) => row[c].length)));
const line = (cells: string[]) =>
  "| " + cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c])))
    .join(" | ") +
  " |";
console.log("");
console.log(line(header));
console.log(
  "|" +
    widths.map((w, c) => (c === 0 ? "-" : "") + "-".repeat(w + 1) + (c === 0 ? "" : ":")).join(
      "|",
    ) + "|",
);
for (const row of table) console.log(line(row));
console.log(
  `\npooled is ${speedUp.toFixed(1)}x the throughput of per-request code; ` +
    `p50 latency ${rows[1].p50} -> ${rows[0].p50}`,
);

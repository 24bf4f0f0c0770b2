/**
 * A run's report: the machine it ran on, the markdown tables (every scenario and contender,
 * median and min-max across rounds, ratios against each alternative, targets with PASS/MISS),
 * and the files written (results.json with every raw figure, results.md, the charts).
 *
 * @module
 */

import {
  type BenchmarkResult,
  type ContenderResult,
  fmt,
  fmtMs,
  fmtRatio,
  type RunPlan,
} from "./benchmark.ts";
import { barChart, percentileChart } from "./charts.ts";
import { isRatioTarget, type TargetMetric, type TargetResult } from "./targets.ts";

/** Where and when a run happened. */
export interface MachineInfo {
  /** ISO date and time the run started. */
  date: string;
  /** Logical CPUs. */
  cores: number;
  /** CPU model name, when the OS tells. */
  cpu: string;
  /** Total memory in GiB. */
  memoryGiB: number;
  /** OS name and kernel. */
  os: string;
  /** Deno version. */
  deno: string;
  /** V8 version. */
  v8: string;
  /** TypeScript version. */
  typescript: string;
  /** 1/5/15-minute load averages when the run started. */
  loadavg: number[];
}

/** Collects machine facts (Linux files are read when present, never required). */
export function machineInfo(): MachineInfo {
  const cpu = readText("/proc/cpuinfo")?.match(/^model name\s*:\s*(.+)$/m)?.[1] ?? "unknown";
  const distro = readText("/etc/os-release")?.match(/^PRETTY_NAME="?([^"\n]+)"?$/m)?.[1];
  return {
    date: new Date().toISOString(),
    cores: navigator.hardwareConcurrency,
    cpu,
    memoryGiB: Math.round((Deno.systemMemoryInfo().total / 2 ** 30) * 10) / 10,
    os: `${distro ?? Deno.build.os} (kernel ${Deno.osRelease()}, ${Deno.build.arch})`,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
    loadavg: Deno.loadavg(),
  };
}

/** One line for humans: "2 cores (…), 23.5 GiB, Debian…, Deno 2.9.6 (V8 …)". */
export function describeMachine(m: MachineInfo): string {
  return `${m.cores} cores (${m.cpu}), ${m.memoryGiB} GiB, ${m.os}, Deno ${m.deno} (V8 ${m.v8}), ` +
    `${m.date.slice(0, 16).replace("T", " ")} UTC`;
}

function readText(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}

/** Renders rows as a padded markdown table; `align` is "l" or "r" per column. */
function table(header: string[], rows: string[][], align: string[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    "| " +
    cells.map((c, i) => (align[i] === "r" ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(
      " | ",
    ) + " |";
  const rule = "|" +
    widths.map((w, i) => (align[i] === "r" ? "-".repeat(w + 1) + ":" : "-".repeat(w + 2))).join(
      "|",
    ) + "|";
  return [line(header), rule, ...rows.map(line)].join("\n");
}

/** The results table of one benchmark. */
function resultsTable(b: BenchmarkResult): string {
  const alternatives = b.ratioBaselines ?? b.contenders.filter((c) => !c.ours).map((c) => c.name);
  const latency = b.scenarios.some((s) => s.results.some((r) => r.latency));
  const lateness = b.scenarios.some((s) =>
    s.results.some((r) => r.timerLatenessP99Ms !== undefined)
  );
  const perOp = b.primary === "usPerOp";
  const header = ["scenario", "contender", perOp ? "µs/op" : "ops/s", "min–max"];
  if (latency) header.push("p50", "p99");
  if (lateness) header.push("timer late p99");
  for (const alt of alternatives) header.push(`${perOp ? "µs/op" : "ops/s"} vs ${alt}`);
  const rows: string[][] = [];
  const primaryOf = (r: ContenderResult) => perOp ? r.usPerOp : r.opsPerSec;
  for (const s of b.scenarios) {
    for (const r of s.results) {
      const value = primaryOf(r);
      const [min, max] = perOp ? [r.usPerOpMin, r.usPerOpMax] : [r.opsPerSecMin, r.opsPerSecMax];
      const row = [s.scenario.label, r.error ? `${r.contender} (failed)` : r.contender];
      row.push(fmt(value), `${fmt(min)}–${fmt(max)}`);
      if (latency) row.push(fmtMs(r.latency?.p50 ?? NaN), fmtMs(r.latency?.p99 ?? NaN));
      if (lateness) row.push(fmtMs(r.timerLatenessP99Ms ?? NaN));
      for (const alt of alternatives) {
        const other = s.results.find((x) => x.contender === alt);
        row.push(
          alt === r.contender || !other ? "—" : fmtRatio(value / primaryOf(other)),
        );
      }
      rows.push(row);
    }
  }
  const align = header.map((_, i) => (i < 2 ? "l" : "r"));
  return table(header, rows, align);
}

/** The targets table: what was asked, what was measured, PASS or MISS. */
function targetsTable(targets: readonly TargetResult[]): string {
  const rows = targets.map((t) => {
    const ratio = isRatioTarget(t);
    return [
      t.label + chosenNote(t),
      ratio ? fmtRatio(t.measured) : figure(t.metric, t.measured),
      `${t.direction === "atMost" ? "≤" : "≥"} ${
        ratio ? fmtRatio(t.limit) : figure(t.metric, t.limit)
      }`,
      t.verdict === "PASS" ? "PASS" : "**MISS**",
    ];
  });
  return table(["target", "measured", "needed", "result"], rows, ["l", "r", "r", "l"]);
}

/** For "best of" targets: which contender the figure is of, against which, and its condition. */
function chosenNote(t: TargetResult): string {
  const notes: string[] = [];
  if (t.bestOf && t.subject) notes.push(t.subject);
  if (t.baselineBestOf && t.against) notes.push(`vs ${t.against}`);
  if (t.when && t.conditionMeasured !== undefined) {
    const name = t.when.metric === "timerLatenessP99Ms" ? "timer late p99" : t.when.metric;
    const ok = t.when.direction === "atMost"
      ? t.conditionMeasured <= t.when.limit
      : t.conditionMeasured >= t.when.limit;
    notes.push(
      `${name} ${figure(t.when.metric, t.conditionMeasured)}${ok ? "" : ", fails the condition"}`,
    );
  }
  return notes.length ? ` [${notes.join(", ")}]` : "";
}

/** A target's figure: ops/s and failures as numbers, everything else a time. */
function figure(metric: TargetMetric, value: number): string {
  if (metric === "failures") return Number.isFinite(value) ? String(value) : "n/a";
  return metric === "opsPerSec" ? fmt(value) : fmtMs(value);
}

/** How far apart the rounds were: (max − min) / median of the primary figure, per row. */
function noiseLine(b: BenchmarkResult): string | undefined {
  const rows = b.scenarios.flatMap((s) =>
    s.results.filter((r) => r.rounds.length > 1).map((r) => ({
      where: `${r.contender}, ${s.scenario.label}`,
      spread: (r.opsPerSecMax - r.opsPerSecMin) / r.opsPerSec,
    }))
  ).filter((r) => Number.isFinite(r.spread));
  if (!rows.length) return undefined;
  rows.sort((x, y) => x.spread - y.spread);
  const mid = rows[rows.length >> 1].spread;
  const worst = rows[rows.length - 1];
  const pct = (v: number) => `${Math.round(v * 100)}%`;
  return `Noise: the rounds of one row differ by ${pct(mid)} of its median (max − min, ` +
    `median over rows); the worst row by ${pct(worst.spread)} (${worst.where}).`;
}

/** The full markdown section of one benchmark. */
export function benchmarkMarkdown(b: BenchmarkResult): string {
  const parts = [`### ${b.title}`, "", b.measures, ""];
  if (b.skipped) {
    parts.push(`Not run: ${b.skipped}`, "");
    if (b.targets.length) parts.push(targetsTable(b.targets), "");
    return parts.join("\n");
  }
  parts.push(
    `${b.plan.rounds} interleaved rounds of ${b.plan.trialMs / 1000} s per contender and ` +
      `scenario after a ${b.plan.warmupMs / 1000} s warm-up; medians, min–max across rounds.`,
    "",
    resultsTable(b),
    "",
  );
  if (b.targets.length) parts.push(targetsTable(b.targets), "");
  const noise = noiseLine(b);
  if (noise) parts.push(noise, "");
  parts.push(...b.contenders.map((c) => `- **${c.name}**: ${c.description}`));
  for (const s of b.scenarios) {
    for (const r of s.results) {
      if (r.error) parts.push(`- ${r.contender} failed in "${s.scenario.label}": ${r.error}`);
      if (r.failures) {
        parts.push(`- ${r.contender}: ${r.failures} calls failed in "${s.scenario.label}"`);
      }
    }
  }
  if (b.notes.length) parts.push(...b.notes.map((n) => `- ${n}`));
  if (b.idleTimerLatenessMs) {
    const { p50, p99, max } = b.idleTimerLatenessMs;
    parts.push(
      `- Timer lateness (a 1 ms timer, how late it fires) with nothing running, just before: ` +
        `p50 ${fmtMs(p50)}, p99 ${fmtMs(p99)}, max ${fmtMs(max)}.`,
    );
  }
  parts.push("");
  return parts.join("\n");
}

/** The whole run as stored in results.json. */
export interface RunReport {
  /** Machine and date. */
  machine: MachineInfo;
  /** Whether this was a `--quick` run (figures not meaningful). */
  quick: boolean;
  /** Run lengths. */
  plan: RunPlan;
  /** The pinned npm versions of the contenders' libraries (deno.json imports). */
  versions: Record<string, string>;
  /** One entry per benchmark run. */
  benchmarks: BenchmarkResult[];
}

/** The markdown of a whole run: machine line, then each benchmark. */
function runMarkdown(report: RunReport): string {
  const head = [
    `Measured on ${describeMachine(report.machine)}` +
    (report.quick ? " — QUICK RUN, figures not meaningful." : "."),
    "",
  ];
  return [...head, ...report.benchmarks.map(benchmarkMarkdown)].join("\n");
}

/** Writes results.json, results.md and the charts into `dir`; returns the files written. */
export async function writeReport(dir: string, report: RunReport): Promise<string[]> {
  await Deno.mkdir(dir, { recursive: true });
  const files: string[] = [];
  const write = async (name: string, content: string) => {
    await Deno.writeTextFile(`${dir}/${name}`, content);
    files.push(`${dir}/${name}`);
  };
  await write("results.json", JSON.stringify(report, null, 2) + "\n");
  await write("results.md", runMarkdown(report));
  for (const b of report.benchmarks) {
    if (b.skipped) continue;
    await write(`${b.id}-throughput.svg`, barChart(b));
    const p = percentileChart(b);
    if (p) await write(`${b.id}-latency.svg`, p);
  }
  await formatText(files);
  return files;
}

/**
 * Runs `deno fmt` on everything written (markdown, JSON, SVG), from the project root (its fmt
 * settings), so that committed results pass `deno fmt --check`.
 */
async function formatText(files: string[]): Promise<void> {
  const root = new URL("../../", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--quiet", ...files],
    cwd: root,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`deno fmt of the results failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/**
 * Writes a run's outputs: results.json (every raw figure, the machine, the
 * date), results.md (the tables) and one or two SVG charts per benchmark.
 *
 * @module
 */

import type { BenchmarkResult, RunPlan } from "./benchmark.ts";
import { describeMachine, type MachineInfo } from "./machine.ts";
import { benchmarkMarkdown } from "./markdown.ts";
import { barChart } from "./svg_bars.ts";
import { percentileChart } from "./svg_percentiles.ts";

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
export function runMarkdown(report: RunReport): string {
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

/**
 * Latency percentile chart: one panel per scenario, x = percentile (p50,
 * p90, p99, p99.9), y = latency on a log scale, one line per contender.
 * Latencies come from every sample of every measured round.
 *
 * @module
 */

import type { BenchmarkResult } from "./benchmark.ts";
import { fmtMs } from "./format.ts";
import { esc, logTicks, PALETTE, r, svgDocument, text } from "./svg_kit.ts";

const PANEL_W = 420;
const PANEL_H = 250;
const COLS = 2;
const TOP = 60;
const PAD = { left: 64, right: 16, top: 28, bottom: 34 };
const POINTS = [["p50", "p50"], ["p90", "p90"], ["p99", "p99"], ["p999", "p99.9"]] as const;

/** The percentile chart of a benchmark that records latencies, or undefined. */
export function percentileChart(b: BenchmarkResult): string | undefined {
  const panels = b.scenarios.filter((s) => s.results.some((x) => x.latency?.count));
  if (!panels.length) return undefined;
  const colour = new Map(b.contenders.map((c, i) => [c.name, PALETTE[i % PALETTE.length]]));
  const rows = Math.ceil(panels.length / COLS);
  const legendH = 24 * Math.ceil(b.contenders.length / 4);
  const width = COLS * PANEL_W + 20;
  const height = TOP + legendH + rows * PANEL_H + 10;
  const body: string[] = [
    text(
      16,
      26,
      `${b.title}: latency percentiles`,
      `font-size="17" font-weight="bold" fill="#111"`,
    ),
    text(
      16,
      46,
      "time per operation as callers see it (queueing for a resource included), log scale; lower is better",
      `font-size="12" fill="#555"`,
    ),
  ];
  b.contenders.forEach((c, i) => {
    const lx = 16 + (i % 4) * 210;
    const ly = TOP + 8 + 24 * Math.floor(i / 4);
    body.push(
      `<rect x="${lx}" y="${ly - 9}" width="14" height="10" fill="${colour.get(c.name)}"/>`,
      text(lx + 20, ly, c.name, `font-size="12" fill="#222"`),
    );
  });
  panels.forEach((s, i) => {
    const ox = 10 + (i % COLS) * PANEL_W;
    const oy = TOP + legendH + Math.floor(i / COLS) * PANEL_H;
    const plotW = PANEL_W - PAD.left - PAD.right;
    const plotH = PANEL_H - PAD.top - PAD.bottom;
    const values = s.results.flatMap((x) => x.latency ? POINTS.map(([k]) => x.latency![k]) : [])
      .filter((v) => v > 0 && Number.isFinite(v));
    const ticks = logTicks(Math.min(...values), Math.max(...values));
    const lmin = Math.log10(ticks[0]);
    const lmax = Math.log10(ticks[ticks.length - 1]);
    const yOf = (v: number) =>
      oy + PAD.top + plotH - ((Math.log10(v) - lmin) / (lmax - lmin)) * plotH;
    const xOf = (j: number) => ox + PAD.left + (j + 0.5) * (plotW / POINTS.length);
    body.push(
      text(
        ox + PAD.left,
        oy + 16,
        s.scenario.label,
        `font-size="13" font-weight="bold" fill="#222"`,
      ),
    );
    for (const t of ticks) {
      body.push(
        `<line x1="${ox + PAD.left}" y1="${r(yOf(t))}" x2="${ox + PAD.left + plotW}" y2="${
          r(yOf(t))
        }" stroke="#e5e7eb"/>`,
        text(
          ox + PAD.left - 6,
          yOf(t) + 4,
          fmtMs(t),
          `font-size="11" text-anchor="end" fill="#555"`,
        ),
      );
    }
    POINTS.forEach(([, label], j) => {
      body.push(
        text(
          xOf(j),
          oy + PAD.top + plotH + 18,
          label,
          `font-size="11" text-anchor="middle" fill="#555"`,
        ),
      );
    });
    body.push(
      `<rect x="${ox + PAD.left}" y="${oy + PAD.top}" width="${plotW}" height="${plotH}" ` +
        `fill="none" stroke="#9ca3af"/>`,
    );
    for (const x of s.results) {
      if (!x.latency?.count) continue;
      const pts = POINTS.map(([k], j) => [xOf(j), yOf(Math.max(x.latency![k], ticks[0]))]);
      const c = colour.get(x.contender);
      body.push(
        `<polyline points="${pts.map(([px, py]) => `${r(px)},${r(py)}`).join(" ")}" fill="none" ` +
          `stroke="${c}" stroke-width="2"/>`,
        ...pts.map(([px, py], j) =>
          `<circle cx="${r(px)}" cy="${r(py)}" r="3.5" fill="${c}"><title>${
            esc(`${x.contender} ${POINTS[j][1]}: ${fmtMs(x.latency![POINTS[j][0]])}`)
          }</title></circle>`
        ),
      );
    }
  });
  return svgDocument(width, height, body);
}

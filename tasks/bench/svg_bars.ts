/**
 * Throughput chart: horizontal bars grouped by scenario, one bar per
 * contender (median across rounds) with a whisker for the min-max across
 * rounds and the median printed at the end of the bar.
 *
 * @module
 */

import type { BenchmarkResult } from "./benchmark.ts";
import { fmt } from "./format.ts";
import { esc, linearTicks, PALETTE, r, svgDocument, text } from "./svg_kit.ts";

const WIDTH = 860;
const LABEL_W = 230;
const RIGHT_PAD = 90;
const BAR_H = 18;
const BAR_GAP = 5;
const GROUP_GAP = 18;
const TOP = 64;
const AXIS_H = 40;

/** The bar chart of a benchmark's primary metric, as an SVG document. */
export function barChart(b: BenchmarkResult): string {
  const perOp = b.primary === "usPerOp";
  const value = (x: { usPerOp: number; opsPerSec: number }) => perOp ? x.usPerOp : x.opsPerSec;
  const hi = (x: { usPerOpMax: number; opsPerSecMax: number }) =>
    perOp ? x.usPerOpMax : x.opsPerSecMax;
  const lo = (x: { usPerOpMin: number; opsPerSecMin: number }) =>
    perOp ? x.usPerOpMin : x.opsPerSecMin;
  const max = Math.max(
    ...b.scenarios.flatMap((s) => s.results.map((x) => hi(x))).filter(Number.isFinite),
    0,
  );
  const ticks = linearTicks(max);
  const scaleMax = ticks[ticks.length - 1];
  const plotW = WIDTH - LABEL_W - RIGHT_PAD;
  const xOf = (v: number) => LABEL_W + (Number.isFinite(v) ? v / scaleMax : 0) * plotW;
  const colour = new Map(b.contenders.map((c, i) => [c.name, PALETTE[i % PALETTE.length]]));

  const body: string[] = [];
  body.push(text(16, 26, b.title, `font-size="17" font-weight="bold" fill="#111"`));
  body.push(
    text(
      16,
      46,
      perOp
        ? "µs per operation, median of rounds (lower is better); whisker: min–max across rounds"
        : "operations per second, median of rounds (higher is better); whisker: min–max across rounds",
      `font-size="12" fill="#555"`,
    ),
  );
  let y = TOP;
  const bars: string[] = [];
  for (const s of b.scenarios) {
    bars.push(text(16, y + 12, s.scenario.label, `font-size="13" font-weight="bold" fill="#222"`));
    y += 20;
    for (const x of s.results) {
      const v = value(x);
      const cy = y + BAR_H / 2;
      bars.push(
        text(LABEL_W - 8, cy + 4, x.contender, `font-size="12" text-anchor="end" fill="#222"`),
      );
      bars.push(
        `<rect x="${LABEL_W}" y="${r(y)}" width="${r(Math.max(0, xOf(v) - LABEL_W))}" ` +
          `height="${BAR_H}" fill="${colour.get(x.contender)}" rx="2"><title>${
            esc(`${x.contender}: ${fmt(v)}`)
          }</title></rect>`,
      );
      if (Number.isFinite(lo(x)) && Number.isFinite(hi(x))) {
        const x1 = xOf(lo(x));
        const x2 = xOf(hi(x));
        bars.push(
          `<path d="M${r(x1)} ${r(cy)}H${r(x2)}M${r(x1)} ${r(cy - 5)}V${r(cy + 5)}M${r(x2)} ${
            r(cy - 5)
          }V${r(cy + 5)}" stroke="#111" stroke-width="1.2" fill="none"/>`,
        );
      }
      const label = x.error ? "failed" : fmt(v);
      bars.push(
        text(Math.max(xOf(v), xOf(hi(x)) || 0) + 6, cy + 4, label, `font-size="12" fill="#111"`),
      );
      y += BAR_H + BAR_GAP;
    }
    y += GROUP_GAP;
  }
  const axisY = y;
  const grid: string[] = [];
  for (const t of ticks) {
    const x = xOf(t);
    grid.push(
      `<line x1="${r(x)}" y1="${TOP}" x2="${r(x)}" y2="${r(axisY)}" stroke="#e5e7eb"/>`,
      text(x, axisY + 16, tickLabel(t), `font-size="11" text-anchor="middle" fill="#555"`),
    );
  }
  grid.push(
    `<line x1="${LABEL_W}" y1="${TOP}" x2="${LABEL_W}" y2="${r(axisY)}" stroke="#9ca3af"/>`,
  );
  return svgDocument(WIDTH, axisY + AXIS_H - 10, [...grid, ...body, ...bars]);
}

function tickLabel(t: number): string {
  return Number.isInteger(t) ? t.toLocaleString("en-US") : fmt(t);
}

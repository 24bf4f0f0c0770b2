/**
 * The SVG charts of a run, self-contained (no scripts, no external fonts): a bar chart of each
 * benchmark's primary figure (median, whiskers min-max across rounds) and, for benchmarks that
 * record latency, percentile panels (p50/p90/p99/p99.9 per contender, log scale).
 *
 * @module
 */

import { type BenchmarkResult, type ContenderResult, fmt, fmtMs } from "./benchmark.ts";

/** Contender colours, in the benchmark's contender order (ours come first). */
const PALETTE = [
  "#2563eb",
  "#0ea5e9",
  "#f59e0b",
  "#10b981",
  "#ef4444",
  "#8b5cf6",
  "#64748b",
  "#ec4899",
  "#92400e",
  "#111827",
  "#84cc16",
  "#14b8a6",
];

/** Font settings for every text element. */
const FONT = `font-family="Helvetica, Arial, sans-serif"`;

/** Escapes text for SVG content and attributes. */
function esc(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(
    /"/g,
    "&quot;",
  );
}

/** A text element. */
function text(
  x: number,
  y: number,
  content: string,
  attrs = "",
): string {
  return `<text x="${r(x)}" y="${r(y)}" ${FONT} ${attrs}>${esc(content)}</text>`;
}

/** Rounds a coordinate to 0.1 px to keep files small. */
function r(v: number): string {
  return (Math.round(v * 10) / 10).toString();
}

/** About `count` round tick values from 0 to at least `max` (linear axis). */
function linearTicks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = 0; v < max + step * 0.999; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

/** Powers of ten (1, 10, 100...) spanning [min, max] (log axis). */
function logTicks(min: number, max: number): number[] {
  const lo = Math.floor(Math.log10(min));
  const hi = Math.ceil(Math.log10(max));
  const ticks: number[] = [];
  for (let e = lo; e <= Math.max(hi, lo + 1); e++) ticks.push(10 ** e);
  return ticks;
}

/** Wraps chart content in an svg element with a white background. */
function svgDocument(width: number, height: number, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    ...body,
    `</svg>`,
    "",
  ].join("\n");
}

const WIDTH = 860;
const LABEL_W = 230;
const RIGHT_PAD = 90;
const BAR_H = 18;
const BAR_GAP = 5;
const GROUP_GAP = 18;
const BARS_TOP = 64;
const AXIS_H = 40;

/** The bar chart of a benchmark's primary metric, as an SVG document. */
export function barChart(b: BenchmarkResult): string {
  const perOp = b.primary === "usPerOp";
  const [key, minKey, maxKey] = perOp
    ? ["usPerOp", "usPerOpMin", "usPerOpMax"] as const
    : ["opsPerSec", "opsPerSecMin", "opsPerSecMax"] as const;
  const value = (x: ContenderResult) => x[key];
  const hi = (x: ContenderResult) => x[maxKey];
  const lo = (x: ContenderResult) => x[minKey];
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
  let y = BARS_TOP;
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
      `<line x1="${r(x)}" y1="${BARS_TOP}" x2="${r(x)}" y2="${r(axisY)}" stroke="#e5e7eb"/>`,
      text(x, axisY + 16, tickLabel(t), `font-size="11" text-anchor="middle" fill="#555"`),
    );
  }
  grid.push(
    `<line x1="${LABEL_W}" y1="${BARS_TOP}" x2="${LABEL_W}" y2="${r(axisY)}" stroke="#9ca3af"/>`,
  );
  return svgDocument(WIDTH, axisY + AXIS_H - 10, [...grid, ...body, ...bars]);
}

function tickLabel(t: number): string {
  return Number.isInteger(t) ? t.toLocaleString("en-US") : fmt(t);
}

const PANEL_W = 420;
const PANEL_H = 250;
const COLS = 2;
const PANELS_TOP = 60;
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
  const height = PANELS_TOP + legendH + rows * PANEL_H + 10;
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
    const ly = PANELS_TOP + 8 + 24 * Math.floor(i / 4);
    body.push(
      `<rect x="${lx}" y="${ly - 9}" width="14" height="10" fill="${colour.get(c.name)}"/>`,
      text(lx + 20, ly, c.name, `font-size="12" fill="#222"`),
    );
  });
  panels.forEach((s, i) => {
    const ox = 10 + (i % COLS) * PANEL_W;
    const oy = PANELS_TOP + legendH + Math.floor(i / COLS) * PANEL_H;
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

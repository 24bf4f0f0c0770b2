/**
 * Small helpers for hand-written SVG: escaping, a palette shared by every
 * chart (a contender keeps its colour across charts) and axis ticks.
 *
 * @module
 */

/** Contender colours, in the benchmark's contender order (ours come first). */
export const PALETTE = [
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
export const FONT = `font-family="Helvetica, Arial, sans-serif"`;

/** Escapes text for SVG content and attributes. */
export function esc(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(
    /"/g,
    "&quot;",
  );
}

/** A text element. */
export function text(
  x: number,
  y: number,
  content: string,
  attrs = "",
): string {
  return `<text x="${r(x)}" y="${r(y)}" ${FONT} ${attrs}>${esc(content)}</text>`;
}

/** Rounds a coordinate to 0.1 px to keep files small. */
export function r(v: number): string {
  return (Math.round(v * 10) / 10).toString();
}

/** About `count` round tick values from 0 to at least `max` (linear axis). */
export function linearTicks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = 0; v < max + step * 0.999; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

/** Powers of ten (1, 10, 100...) spanning [min, max] (log axis). */
export function logTicks(min: number, max: number): number[] {
  const lo = Math.floor(Math.log10(min));
  const hi = Math.ceil(Math.log10(max));
  const ticks: number[] = [];
  for (let e = lo; e <= Math.max(hi, lo + 1); e++) ticks.push(10 ** e);
  return ticks;
}

/** Wraps chart content in an svg element with a white background. */
export function svgDocument(width: number, height: number, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    ...body,
    `</svg>`,
    "",
  ].join("\n");
}

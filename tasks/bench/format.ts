/**
 * Number formatting shared by tables and charts: a few significant digits,
 * thousands separators, ratios as "0.42×".
 *
 * @module
 */

/** A figure with about three significant digits ("1.23", "45.6", "12,345"). */
export function fmt(value: number): string {
  if (!Number.isFinite(value)) return "n/a";
  const abs = Math.abs(value);
  if (abs >= 1000) return Math.round(value).toLocaleString("en-US");
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  return value.toPrecision(2);
}

/** A ratio: "0.42×". */
export function fmtRatio(value: number): string {
  return Number.isFinite(value) ? `${value >= 10 ? value.toFixed(0) : value.toFixed(2)}×` : "n/a";
}

/** A milliseconds figure with its unit, switching to µs below 1 ms. */
export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return "n/a";
  return ms < 1 ? `${fmt(ms * 1000)} µs` : `${fmt(ms)} ms`;
}

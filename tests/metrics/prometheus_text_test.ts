import { test } from "../pool/sanitized.ts";
import assert from "node:assert/strict";
import { ExpositionError, parseExposition } from "./prometheus_text.ts";

// The strict parser is itself a test tool: these pin down that it rejects
// what it claims to, so a passing metrics test means something.

const ok = [
  "# HELP x_total Things.",
  "# TYPE x_total counter",
  'x_total{pool="a"} 1',
  "# HELP h Waits.",
  "# TYPE h histogram",
  'h_bucket{pool="a",le="0.1"} 1',
  'h_bucket{pool="a",le="+Inf"} 2',
  'h_sum{pool="a"} 0.3',
  'h_count{pool="a"} 2',
  "",
].join("\n");

function rejects(text: string, message: RegExp) {
  assert.throws(
    () => parseExposition(text),
    (e: unknown) => e instanceof ExpositionError && message.test(e.message),
  );
}

test("the parser accepts well-formed counters and histograms", () => {
  const f = parseExposition(ok);
  assert.equal(f.get("x_total")?.samples[0].value, 1);
  assert.equal(f.get("h")?.samples.length, 4);
});

test("the parser rejects a sample before its TYPE line", () => {
  rejects('# HELP g G.\ng{a="1"} 1\n# TYPE g gauge\n', /no preceding TYPE/);
});

test("the parser rejects a second HELP or TYPE for a family", () => {
  rejects("# HELP g G.\n# HELP g G.\n# TYPE g gauge\ng 1\n", /second HELP/);
  rejects("# HELP g G.\n# TYPE g gauge\n# TYPE g gauge\ng 1\n", /second TYPE/);
});

test("the parser rejects families that are not contiguous", () => {
  rejects(
    '# HELP a A.\n# TYPE a gauge\na{x="1"} 1\n# HELP b B.\n# TYPE b gauge\nb 1\na{x="2"} 1\n',
    /not contiguous/,
  );
});

test("the parser rejects bad escapes and unterminated label values", () => {
  rejects('# HELP g G.\n# TYPE g gauge\ng{a="\\t"} 1\n', /invalid escape/);
  rejects('# HELP g G.\n# TYPE g gauge\ng{a="x} 1\n', /unterminated|expected/);
});

test("the parser rejects duplicate series and duplicate label names", () => {
  rejects('# HELP g G.\n# TYPE g gauge\ng{a="1"} 1\ng{a="1"} 2\n', /duplicate series/);
  rejects('# HELP g G.\n# TYPE g gauge\ng{a="1",a="2"} 1\n', /twice/);
});

test("the parser rejects values that are not Go floats", () => {
  rejects("# HELP g G.\n# TYPE g gauge\ng 0x10\n", /bad number/);
  rejects("# HELP g G.\n# TYPE g gauge\ng infinity\n", /bad number/);
});

test("the parser rejects counters without _total and negative counters", () => {
  rejects("# HELP c C.\n# TYPE c counter\nc 1\n", /_total/);
  rejects("# HELP c_total C.\n# TYPE c_total counter\nc_total -1\n", /counter/);
});

test("the parser rejects incomplete or non-cumulative histograms", () => {
  const h = (...lines: string[]) => ["# HELP h H.", "# TYPE h histogram", ...lines, ""].join("\n");
  rejects(h('h_bucket{le="1"} 1', "h_sum 1", "h_count 1"), /\+Inf/);
  rejects(h('h_bucket{le="1"} 2', 'h_bucket{le="+Inf"} 1', "h_sum 1", "h_count 1"), /cumulative/);
  rejects(h('h_bucket{le="+Inf"} 2', "h_sum 1", "h_count 3"), /differs from _count/);
  rejects(h('h_bucket{le="+Inf"} 2', "h_count 2"), /_sum/);
});

test("the parser rejects a missing final line feed, empty lines and HELP-less families", () => {
  rejects(ok.trimEnd(), /line feed/);
  rejects(ok.replace("# TYPE h", "\n# TYPE h"), /empty line/);
  rejects("# TYPE g gauge\ng 1\n", /no HELP/);
});

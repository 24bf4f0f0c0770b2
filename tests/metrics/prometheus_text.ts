/**
 * A strict parser of the Prometheus text exposition format (version 0.0.4),
 * for tests. It rejects everything the format forbids, and also what it merely
 * tolerates but a clean exporter never emits: empty lines, free comments,
 * untyped samples, trailing commas in label sets, a missing final newline.
 * It checks the semantics too: families contiguous, one HELP and one TYPE
 * before the samples, no duplicate series, counters named `_total` and not
 * negative, histograms complete (`le` ascending, cumulative counts, a `+Inf`
 * bucket equal to `_count`, a `_sum`).
 *
 * @module
 */

/** One sample line. */
export interface Sample {
  /** Sample name (with `_bucket`/`_sum`/`_count` for histograms). */
  name: string;
  /** Label values, unescaped. */
  labels: Record<string, string>;
  /** The value. */
  value: number;
}

/** One metric family with its metadata and samples, in text order. */
export interface Family {
  /** Family name (the TYPE line's). */
  name: string;
  /** The TYPE line's type. */
  type: "counter" | "gauge" | "histogram" | "summary" | "untyped";
  /** The HELP text, unescaped. */
  help: string;
  /** Samples in text order. */
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const FLOAT = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

/** Thrown for text that is not strictly valid; the message names the line. */
export class ExpositionError extends Error {
  /** Makes the error for 1-based `line` (0: the text as a whole). */
  constructor(line: number, message: string) {
    super(`line ${line}: ${message}`);
    this.name = "ExpositionError";
  }
}

/** Parses exposition text into families keyed by name; throws {@link ExpositionError}. */
export function parseExposition(text: string): Map<string, Family> {
  if (text.length > 0 && !text.endsWith("\n")) {
    throw new ExpositionError(0, "text must end with a line feed");
  }
  const families = new Map<string, Family>();
  const closed = new Set<string>(); // families that another family has followed
  const series = new Set<string>();
  const seen = new Map<string, { helped: boolean; typed: boolean }>();
  let current: string | undefined;
  const lines = text.split("\n").slice(0, -1);
  const enter = (lineNo: number, name: string) => {
    if (current === name) return;
    if (closed.has(name)) {
      throw new ExpositionError(lineNo, `family ${name} is not contiguous`);
    }
    if (current !== undefined) closed.add(current);
    current = name;
  };

  lines.forEach((line, i) => {
    const lineNo = i + 1;
    if (line.includes("\r")) throw new ExpositionError(lineNo, "carriage return");
    if (line === "") throw new ExpositionError(lineNo, "empty line");
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
      if (!m) throw new ExpositionError(lineNo, `not a HELP or TYPE line: ${line}`);
      const [, kind, name, rest] = m;
      if (!METRIC_NAME.test(name)) throw new ExpositionError(lineNo, `bad metric name ${name}`);
      enter(lineNo, name);
      let family = families.get(name);
      if (family?.samples.length) {
        throw new ExpositionError(lineNo, `${kind} of ${name} after its samples`);
      }
      if (!family) {
        family = { name, type: "untyped", help: "", samples: [] };
        families.set(name, family);
        seen.set(name, { helped: false, typed: false });
      }
      const meta = seen.get(name)!;
      if (kind === "HELP") {
        if (meta.helped) throw new ExpositionError(lineNo, `second HELP for ${name}`);
        meta.helped = true;
        family.help = unescape(lineNo, rest, false);
      } else {
        if (meta.typed) throw new ExpositionError(lineNo, `second TYPE for ${name}`);
        if (!TYPES.has(rest)) throw new ExpositionError(lineNo, `unknown type ${rest}`);
        meta.typed = true;
        family.type = rest as Family["type"];
      }
      return;
    }
    const sample = parseSample(lineNo, line);
    const family = familyOf(sample.name, families);
    if (!family || !seen.get(family.name)!.typed) {
      throw new ExpositionError(lineNo, `sample ${sample.name} has no preceding TYPE line`);
    }
    enter(lineNo, family.name);
    const key = sample.name + JSON.stringify(Object.entries(sample.labels).sort());
    if (series.has(key)) throw new ExpositionError(lineNo, `duplicate series ${line}`);
    series.add(key);
    family.samples.push(sample);
  });

  for (const family of families.values()) {
    if (!seen.get(family.name)!.helped) {
      throw new ExpositionError(0, `family ${family.name} has no HELP line`);
    }
    checkFamily(family);
  }
  return families;
}

/** The family a sample belongs to: histogram/summary samples carry a suffix. */
function familyOf(sample: string, families: Map<string, Family>): Family | undefined {
  const exact = families.get(sample);
  if (exact && exact.type !== "histogram" && exact.type !== "summary") return exact;
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (!sample.endsWith(suffix)) continue;
    const base = families.get(sample.slice(0, -suffix.length));
    if (base?.type === "histogram") return base;
    if (base?.type === "summary" && suffix !== "_bucket") return base;
  }
  if (exact?.type === "summary") return exact;
  return undefined;
}

function parseSample(lineNo: number, line: string): Sample {
  const m = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
  if (!m) throw new ExpositionError(lineNo, `bad sample line: ${line}`);
  const name = m[0];
  let pos = name.length;
  const labels: Record<string, string> = {};
  if (line[pos] === "{") {
    pos++;
    while (line[pos] !== "}") {
      const nameMatch = /^[^=]*/.exec(line.slice(pos))![0];
      if (!LABEL_NAME.test(nameMatch) || nameMatch.startsWith("__")) {
        throw new ExpositionError(lineNo, `bad label name ${JSON.stringify(nameMatch)}`);
      }
      if (nameMatch in labels) throw new ExpositionError(lineNo, `label ${nameMatch} twice`);
      pos += nameMatch.length;
      if (line.slice(pos, pos + 2) !== '="') {
        throw new ExpositionError(lineNo, `label ${nameMatch} without ="value"`);
      }
      pos += 2;
      let raw = "";
      while (pos < line.length && line[pos] !== '"') {
        if (line[pos] === "\\") {
          raw += line.slice(pos, pos + 2);
          pos += 2;
        } else {
          raw += line[pos++];
        }
      }
      if (pos >= line.length) throw new ExpositionError(lineNo, "unterminated label value");
      labels[nameMatch] = unescape(lineNo, raw, true);
      pos++; // closing quote
      if (line[pos] === ",") {
        pos++;
        if (line[pos] === "}") throw new ExpositionError(lineNo, "trailing comma in labels");
      } else if (line[pos] !== "}") {
        throw new ExpositionError(lineNo, `expected , or } after label ${nameMatch}`);
      }
    }
    pos++;
  }
  if (line[pos] !== " ") throw new ExpositionError(lineNo, `expected one space before value`);
  const fields = line.slice(pos + 1).split(" ");
  if (fields.length > 2 || fields.some((f) => f === "")) {
    throw new ExpositionError(lineNo, `expected "value [timestamp]": ${line}`);
  }
  const value = parseFloatStrict(lineNo, fields[0]);
  if (fields.length === 2 && !/^-?\d+$/.test(fields[1])) {
    throw new ExpositionError(lineNo, `bad timestamp ${fields[1]}`);
  }
  return { name, labels, value };
}

function parseFloatStrict(lineNo: number, text: string): number {
  if (text === "+Inf" || text === "Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  if (text === "NaN") return NaN;
  if (!FLOAT.test(text)) throw new ExpositionError(lineNo, `bad number ${JSON.stringify(text)}`);
  return Number(text);
}

/** Undoes `\\`, `\n` (and `\"` in label values); any other escape is an error. */
function unescape(lineNo: number, raw: string, quote: boolean): string {
  return raw.replace(/\\(.?)/g, (_, c: string) => {
    if (c === "\\") return "\\";
    if (c === "n") return "\n";
    if (c === '"' && quote) return '"';
    throw new ExpositionError(lineNo, `invalid escape \\${c}`);
  });
}

function checkFamily(family: Family): void {
  if (family.samples.length === 0) {
    throw new ExpositionError(0, `family ${family.name} has no samples`);
  }
  if (family.type === "counter") {
    if (!family.name.endsWith("_total")) {
      throw new ExpositionError(0, `counter ${family.name} does not end with _total`);
    }
    for (const s of family.samples) {
      if (!(s.value >= 0)) throw new ExpositionError(0, `counter ${s.name} is ${s.value}`);
    }
  }
  if (family.type === "histogram") checkHistogram(family);
}

function checkHistogram(family: Family): void {
  const groups = new Map<
    string,
    { le: number[]; counts: number[]; sum?: number; count?: number }
  >();
  for (const s of family.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    let g = groups.get(key);
    if (!g) groups.set(key, g = { le: [], counts: [] });
    if (s.name === `${family.name}_bucket`) {
      if (le === undefined) throw new ExpositionError(0, `${s.name} without le label`);
      g.le.push(parseFloatStrict(0, le));
      g.counts.push(s.value);
    } else if (le !== undefined) {
      throw new ExpositionError(0, `${s.name} must not carry an le label`);
    } else if (s.name === `${family.name}_sum`) {
      g.sum = s.value;
    } else {
      g.count = s.value;
    }
  }
  for (const [key, g] of groups) {
    const where = `histogram ${family.name}${key}`;
    for (let i = 1; i < g.le.length; i++) {
      if (!(g.le[i] > g.le[i - 1])) throw new ExpositionError(0, `${where}: le not ascending`);
      if (!(g.counts[i] >= g.counts[i - 1])) {
        throw new ExpositionError(0, `${where}: bucket counts not cumulative`);
      }
    }
    if (g.le.at(-1) !== Infinity) throw new ExpositionError(0, `${where}: no +Inf bucket`);
    if (g.sum === undefined || g.count === undefined) {
      throw new ExpositionError(0, `${where}: missing _sum or _count`);
    }
    if (g.counts.at(-1) !== g.count) {
      throw new ExpositionError(0, `${where}: +Inf bucket differs from _count`);
    }
  }
}

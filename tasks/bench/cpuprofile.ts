/**
 * Summarises a V8 `.cpuprofile` (from `deno run --cpu-prof`): self time by
 * area (which library or folder the code is in) and the top functions, in
 * ms and, given the operations the profiled run completed, µs per operation.
 *
 *   deno run -A tasks/bench/cpuprofile.ts FILE.cpuprofile [--ops N] [--top 20]
 *
 * @module
 */

import { exitOnUsageError, UsageError } from "./cli.ts";
import { toolArgs, wholeNumber } from "./tool_args.ts";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Which area a frame belongs to, from its script URL. */
export function areaOf(url: string, name: string): string {
  if (!url) return name.startsWith("(") ? name : "(native)";
  const rules: [RegExp, string][] = [
    [/\/adapters\/postgres\//, "adapters/postgres"],
    [/\/adapters\/pkcs11\//, "adapters/pkcs11"],
    [/\/pool\//, "pool/ (core)"],
    [/\/tasks\/bench\//, "tasks/bench (load generator)"],
    [/\/postgres@[^/]+\//, "postgres.js"],
    [/\/pg(-[a-z]+)?@[^/]+\//, "pg (node-postgres)"],
    [/\/pkcs11js@[^/]+\//, "pkcs11js"],
    [/^node:|ext:deno_node|ext:node/, "Deno node compat (node:net, Buffer...)"],
    [/^ext:/, "Deno runtime (ext:)"],
  ];
  for (const [re, area] of rules) if (re.test(url)) return area;
  return "other";
}

/** Self time (µs) per node id. */
function selfTimes(p: Profile): Map<number, number> {
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i];
    self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  return self;
}

const USAGE = "usage: deno run -A tasks/bench/cpuprofile.ts FILE.cpuprofile [--ops N] [--top 20]";

function main(): void {
  const { values, positionals } = toolArgs({
    args: Deno.args,
    allowPositionals: true,
    options: { ops: { type: "string" }, top: { type: "string", default: "20" } },
  }, USAGE);
  if (positionals.length !== 1) {
    return exitOnUsageError(
      new UsageError(`give one profile, got ${positionals.length}\n${USAGE}`),
    );
  }
  const p: Profile = JSON.parse(Deno.readTextFileSync(positionals[0]));
  const ops = values.ops ? wholeNumber(values.ops, "--ops", USAGE) : undefined;
  const self = selfTimes(p);
  const byArea = new Map<string, number>();
  const byFn = new Map<string, number>();
  let total = 0;
  for (const node of p.nodes) {
    const us = self.get(node.id) ?? 0;
    if (!us) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const area = areaOf(url, functionName);
    total += us;
    byArea.set(area, (byArea.get(area) ?? 0) + us);
    const file = url.replace(/^.*\/(node_modules\/\.deno\/|work\/wt\/[^/]+\/)/, "");
    const key = `${functionName || "(anonymous)"} ${file}:${lineNumber + 1}`;
    byFn.set(key, (byFn.get(key) ?? 0) + us);
  }
  const busy = total - (byArea.get("(idle)") ?? 0);
  const row = (name: string, us: number) =>
    `| ${name} | ${(us / 1000).toFixed(1)} | ${
      name.startsWith("(idle)") ? "—" : `${(100 * us / busy).toFixed(1)}%`
    } |` +
    (ops ? ` ${(us / ops).toFixed(2)} |` : "");
  const head = `| ms | % of non-idle |${ops ? " µs/op |" : ""}`;
  const rule = `|---:|---:|${ops ? "---:|" : ""}`;
  console.log(
    `profile: ${(total / 1000).toFixed(0)} ms sampled, ${(busy / 1000).toFixed(0)} ms ` +
      `not idle${ops ? `, ${ops} ops` : ""}\n`,
  );
  console.log(`| area ${head}\n|---${rule}`);
  for (const [area, us] of [...byArea].sort((a, b) => b[1] - a[1])) console.log(row(area, us));
  console.log(`\n| function (self time) ${head}\n|---${rule}`);
  const top = [...byFn].sort((a, b) => b[1] - a[1]).slice(
    0,
    wholeNumber(values.top, "--top", USAGE),
  );
  for (const [fn, us] of top) console.log(row(fn.replaceAll("|", "\\|"), us));
}

if (import.meta.main) main();

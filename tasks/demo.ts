/**
 * `deno task demo`: what the pool is for, on both adapters, with nothing set up by hand (it
 * readies the machine first, as `deno task setup --for demo` does):
 *
 * 1. `demo:hsm`: concurrent HSM crypto on a private SoftHSM2 token, through the session pool
 *    and the per-request way, with the speed-up;
 * 2. `demo:orders`: an orders DAO over the PostgreSQL pool, on a throwaway cluster (or
 *    `DATABASE_URL`).
 *
 * Each runs as its own process, exactly as its own task would; their last lines come back at
 * the end as the result.
 *
 * @module
 */

import { setup } from "./setup/main.ts";
import { SetupError } from "./setup/system.ts";
import { taskArgs } from "./task_args.ts";

const USAGE = `usage: deno task demo
  readies this machine (deno task setup --for demo), then runs deno task demo:hsm and
  deno task demo:orders with their defaults; see their --help for their flags`;

/** One part of the demo: a task script and what it shows. */
interface Part {
  title: string;
  script: string;
}

const PARTS: Part[] = [
  {
    title: "HSM sessions (PKCS#11 on SoftHSM2): pooled vs opened per request",
    script: "demo_hsm.ts",
  },
  { title: "PostgreSQL connections: an orders DAO over the pool", script: "demo_orders.ts" },
];

/** Runs one part, passing its output through; returns its last line of stdout. */
async function runPart(part: Part, index: number): Promise<string> {
  console.log(`\n=== ${index + 1}/${PARTS.length} ${part.title}\n`);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(part.script, import.meta.url).pathname],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let last = "";
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    await Deno.stdout.write(new TextEncoder().encode(chunk));
    const lines = chunk.split("\n").map((l) => l.trim()).filter((l) => l.length > 0);
    if (lines.length > 0) last = lines[lines.length - 1];
  }
  const { code } = await child.status;
  if (code !== 0) throw new Error(`${part.script} failed (exit ${code}); see its output above`);
  return last;
}

if (import.meta.main) {
  taskArgs(USAGE, {});
  try {
    await setup("demo");
    const results: string[] = [];
    for (const [i, part] of PARTS.entries()) results.push(await runPart(part, i));
    console.log("\n=== Result");
    for (const [i, part] of PARTS.entries()) {
      console.log(`${part.title}:\n  ${results[i]}`);
    }
  } catch (error) {
    console.error(
      error instanceof SetupError ? error.message : `demo: ${(error as Error).message}`,
    );
    Deno.exit(1);
  }
}

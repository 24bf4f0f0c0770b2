/**
 * `deno task setup [--for test|demo|hsm]`: makes this machine ready for a job, in one go and
 * idempotently (fast when everything is there). `deno task test` and `deno task demo` run it
 * first.
 *
 * 1. Finds every missing system package the job needs (`requirements.ts`) and installs them in
 *    one `apt-get` step, printing what and why; a user who cannot install gets one message with
 *    everything missing and the exact command (`system.ts`).
 * 2. Installs the npm packages and builds pkcs11js's native addon, with progress (`pkcs11js.ts`).
 * 3. Provisions the private SoftHSM2 token in `.local/softhsm` (`softhsm.ts`).
 *
 * PostgreSQL needs no step here: tests and demos start a throwaway cluster themselves
 * (`postgres.ts`), or use `DATABASE_URL`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ensurePkcs11js } from "./pkcs11js.ts";
import type { Purpose } from "./requirements.ts";
import { ensureSystemPackages, SetupError } from "./system.ts";

const PURPOSES: readonly Purpose[] = ["test", "demo", "hsm"];
const USAGE = "usage: deno task setup [--for test|demo|hsm]   (default: test, everything)";

/** Readies the machine for `purpose`; progress goes to `log` (stderr by default). */
export async function setup(
  purpose: Purpose,
  log: (line: string) => void = (line) => console.error(line),
): Promise<void> {
  const started = performance.now();
  await ensureSystemPackages(purpose, { log });
  await ensurePkcs11js(log);
  // Imported after the build, to keep the order obvious: nothing above may need the addon.
  const { provisionSoftHsm } = await import("./softhsm.ts");
  await using hsm = await provisionSoftHsm({ setEnv: false });
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  log(
    `setup: ready for ${purpose} in ${seconds} s (SoftHSM2 token "${hsm.tokenLabel}" ` +
      `${hsm.created ? "created" : "ready"}, SOFTHSM2_CONF=${hsm.conf})`,
  );
}

function parsePurpose(args: string[]): Purpose {
  const { values } = parseArgs({
    args,
    options: { for: { type: "string", default: "test" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const purpose = values.for as Purpose;
  if (!PURPOSES.includes(purpose)) throw new TypeError(`--for must be test, demo or hsm\n${USAGE}`);
  return purpose;
}

if (import.meta.main) {
  try {
    await setup(parsePurpose(Deno.args));
  } catch (error) {
    const known = error instanceof SetupError || error instanceof TypeError;
    console.error(known ? (error as Error).message : error);
    Deno.exit(1);
  }
}

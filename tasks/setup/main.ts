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
 * 4. For the tests (and benchmarks), builds the PKCS#11 fault module that stands in front of
 *    SoftHSM2 (`fault_module.ts`).
 *
 * PostgreSQL needs no step here: tests and demos start a throwaway cluster themselves
 * (`postgres.ts`), or use `DATABASE_URL`.
 *
 * @module
 */
import { ensurePkcs11js } from "./pkcs11js.ts";
import type { Purpose } from "./requirements.ts";
import { ensureSystemPackages, SetupError } from "./system.ts";
import { exitOnUsageError, taskArgs, UsageError } from "../task_args.ts";

const PURPOSES: readonly Purpose[] = ["test", "demo", "hsm"];
const USAGE = `usage: deno task setup [--for test|demo|hsm]
  makes this machine ready: system packages, the pkcs11js addon, the private SoftHSM2 token
  --for JOB   what to get ready for: test (default, everything), demo, hsm`;

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
  if (purpose === "test") {
    const { buildFaultModule } = await import("./fault_module.ts");
    await buildFaultModule();
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  log(
    `setup: ready for ${purpose} in ${seconds} s (SoftHSM2 token "${hsm.tokenLabel}" ` +
      `${hsm.created ? "created" : "ready"}, SOFTHSM2_CONF=${hsm.conf})`,
  );
}

function parsePurpose(args: string[]): Purpose {
  const { values } = taskArgs(USAGE, { for: { type: "string", default: "test" } }, args);
  const purpose = values.for as Purpose;
  if (!PURPOSES.includes(purpose)) {
    exitOnUsageError(new UsageError(`--for must be test, demo or hsm, got "${purpose}"\n${USAGE}`));
  }
  return purpose;
}

if (import.meta.main) {
  const purpose = parsePurpose(Deno.args);
  try {
    await setup(purpose);
  } catch (error) {
    console.error(error instanceof SetupError ? error.message : error);
    Deno.exit(1);
  }
}

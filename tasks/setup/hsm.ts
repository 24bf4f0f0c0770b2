/**
 * `deno task setup:hsm`: what the HSM adapter needs on this machine (SoftHSM2 and the tools to
 * build pkcs11js's native addon, the addon, the private token in `.local/softhsm`). The same as
 * `deno task setup --for hsm`.
 *
 * @module
 */
import { setup } from "./main.ts";
import { SetupError } from "./system.ts";
import { taskArgs } from "../task_args.ts";

taskArgs(
  `usage: deno task setup:hsm
  makes this machine ready for the PKCS#11 adapter (same as deno task setup --for hsm)`,
  {},
);
try {
  await setup("hsm");
} catch (error) {
  console.error(error instanceof SetupError ? error.message : error);
  Deno.exit(1);
}

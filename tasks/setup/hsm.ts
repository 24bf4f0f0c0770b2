/**
 * `deno task setup:hsm`: everything the HSM adapter needs on this machine,
 * idempotent and fast when already done: builds pkcs11js's native addon if
 * missing, then provisions the private SoftHSM2 token in `.local/softhsm`.
 *
 * @module
 */
import { ensurePkcs11js } from "./pkcs11js.ts";

await ensurePkcs11js();
// Imported after the build: softhsm.ts does not load pkcs11js, but keep the
// order obvious for whoever adds to it.
const { provisionSoftHsm } = await import("./softhsm.ts");
const hsm = await provisionSoftHsm();
console.error(
  `setup: SoftHSM2 token "${hsm.tokenLabel}" ${hsm.created ? "created" : "ready"} ` +
    `(SOFTHSM2_CONF=${hsm.conf})`,
);
